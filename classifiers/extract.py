"""Where and how urgent: district and address from the text, and urgency terms that raise priority.

The data's places are anonymised codes (A市, A3区, K8县); real deployments swap in the city's gazetteer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contracts import Urgency

_DISTRICT = re.compile(r"(?<![A-Za-z0-9])([A-Z]\d{1,2}[区县市])")
_CITY = re.compile(r"(?<![A-Za-z0-9])([A-Z]市)")
_ADDRESS = re.compile(
    r"(?:[A-Z]\d{0,2}[市区县])?"
    r"[\u4e00-\u9fffA-Za-z0-9]{1,12}?"
    r"(?:路|街|大道|巷|道|镇|乡|村|社区|小区|花园|苑|广场|大厦|公寓)"
    r"(?:[\u4e00-\u9fff0-9]{0,8}?(?:号|栋|单元|组|段|口))?"
)
_EMERGENCY_TERMS = ("燃气泄漏", "煤气泄漏", "天然气泄漏", "漏气", "着火", "起火", "火灾", "爆炸", "倒塌", "坍塌",
                    "被困", "触电", "溺水", "塌陷", "危及生命")
_ELEVATED_TERMS = ("安全隐患", "漏水", "积水", "停水", "停电", "断电", "危险", "老人", "儿童", "孕妇", "拖欠工资",
                   "欠薪", "围堵", "堵塞", "隐患")


@dataclass(frozen=True)
class Place:
    district: str | None
    city: str | None
    address: str | None


@dataclass(frozen=True)
class UrgencyFinding:
    level: Urgency
    terms: list[str] = field(default_factory=list)


def extract_place(text: str, hint: str | None = None) -> Place:
    district_match = _DISTRICT.search(text)
    city_match = _CITY.search(text)
    district = district_match.group(1) if district_match else hint
    return Place(
        district=district,
        city=city_match.group(1) if city_match else None,
        address=_best_address(text),
    )


def _best_address(text: str) -> str | None:
    candidates = [m.group(0) for m in _ADDRESS.finditer(text[:600])]
    candidates = [c for c in candidates if len(c) >= 3]
    return max(candidates, key=len) if candidates else None


def assess_urgency(text: str) -> UrgencyFinding:
    emergency = [t for t in _EMERGENCY_TERMS if t in text]
    if emergency:
        return UrgencyFinding(Urgency.EMERGENCY, emergency)
    elevated = [t for t in _ELEVATED_TERMS if t in text]
    return UrgencyFinding(Urgency.ELEVATED if elevated else Urgency.NONE, elevated)
