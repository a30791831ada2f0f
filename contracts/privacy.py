"""Masking of personal numbers before anything is stored, logged or sent on a topic.

Numbers are found as people write them: grouped by spaces or dashes (138 1234 5678), with a country code
(+86, 0086), an area code in brackets ((010)12345678), in full-width digits (１３８…). Masked text holds no digit
run long enough to match again, so masking twice changes nothing.
"""

import re

_D = "[0-9０-９]"  # ASCII or full-width digit
_X = "[XxＸｘ]"
# nor right after a masked number's stars: the four digits masking keeps must not start a match next time
_NOT_AFTER_DIGIT = "(?<![0-9０-９*])"
_NOT_BEFORE_DIGIT = f"(?!{_D})"
_SEP = "[ \u3000－—–-]{0,2}"  # up to two spaces or dashes (ASCII, full-width, em, en) between groups
_RESIDENT_ID = re.compile(  # 18 characters (the last may be X), or 15 digits with a yymmdd birth date
    f"(?<![0-9０-９XxＸｘ*])(?:({_D}{{6}}){_SEP}({_D}{{8}}){_SEP}({_D}{{3}}[0-9０-９XxＸｘ])"
    f"|({_D}{{6}}){_SEP}({_D}{{2}}(?:[0０]{_D}|[1１][0-2０-２])[0-3０-３]{_D}){_SEP}({_D}{{3}}))"
    f"(?![0-9０-９XxＸｘ])")
_BANK_CARD = re.compile(  # 16-19 digits, run together or in groups of four
    f"{_NOT_AFTER_DIGIT}(?:{_D}{{16,19}}|{_D}{{4}}(?:[ \u3000-]{_D}{{4}}){{3}}(?:[ \u3000-]{_D}{{1,3}})?)"
    f"{_NOT_BEFORE_DIGIT}")
_MOBILE = re.compile(  # with a country code (+86, 0086) kept as written
    f"{_NOT_AFTER_DIGIT}((?:[+＋]|00)?86[ -]?)?([1１][3-9３-９]{_D}){_SEP}({_D}{{4}}){_SEP}({_D}{{4}})"
    f"{_NOT_BEFORE_DIGIT}")
_LANDLINE = re.compile(
    f"{_NOT_AFTER_DIGIT}(?:[(（]([0０]{_D}{{2,3}})[)）]{_SEP}|([0０]{_D}{{2,3}}){_SEP})"
    f"({_D}{{3,4}}){_SEP}({_D}{{4}}){_NOT_BEFORE_DIGIT}")


def mask_phone(phone: str) -> str:
    """Keep the first three and last four digits of a phone number: 13812345678 -> 138****5678."""
    if "*" in phone:  # already masked (a message read again): masking twice would eat the kept digits
        return phone
    digits = re.sub(r"\D", "", phone)
    if (len(digits), digits[:2]) == (13, "86") or (len(digits), digits[:4]) == (15, "0086"):
        digits = digits[-11:]  # a mobile with its country code
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) <= 7:
        return "*" * (len(digits) - 4) + digits[-4:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_pii(text: str) -> str:
    """Mask resident ID numbers, bank card numbers, mobile and landline numbers inside free text."""
    text = _RESIDENT_ID.sub(_mask_id, text)
    text = _BANK_CARD.sub(lambda m: "*" * (len(_digits(m.group(0))) - 4) + _digits(m.group(0))[-4:], text)
    text = _MOBILE.sub(lambda m: (m.group(1) or "") + m.group(2) + "****" + m.group(4), text)
    return _LANDLINE.sub(lambda m: (m.group(1) or m.group(2)) + "-****" + m.group(4), text)


def _mask_id(match: re.Match[str]) -> str:
    number = "".join(group for group in match.groups() if group)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def _digits(text: str) -> str:
    return re.sub(r"[ \u3000-]", "", text)
