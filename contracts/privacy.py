"""Masking of personal numbers before anything is stored, logged or sent on a topic."""

import re

_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})-?(\d{3,4})(\d{4})(?!\d)")
_RESIDENT_ID = re.compile(r"(?<![\dXx])(\d{6})(\d{8})(\d{3}[\dXx])(?![\dXx])")


def mask_phone(phone: str) -> str:
    """Keep the first three and last four digits of a phone number: 13812345678 -> 138****5678."""
    if "*" in phone:  # already masked (a message read again): masking twice would eat the kept digits
        return phone
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) <= 7:
        return "*" * (len(digits) - 4) + digits[-4:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_pii(text: str) -> str:
    """Mask resident ID numbers, mobile and landline numbers inside free text."""
    text = _RESIDENT_ID.sub(lambda m: m.group(1)[:3] + "*" * 11 + m.group(3)[-4:], text)
    text = _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(3), text)
    return _LANDLINE.sub(lambda m: m.group(1) + "-****" + m.group(3), text)
