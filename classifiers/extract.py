"""Where and how urgent: district and address from the text, and urgency terms that raise priority.

The data's places are anonymised codes (A市, A3区, K8县); real deployments swap in the city's gazetteer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contracts import Urgency

_DISTRICT = re.compile(r"(?<![A-Za-z0-9])([A-Z]\d{1,2}[区县市])")
_CITY = re.compile(r"(?<![A-Za-z0-9])([A-Z]市)")
_CODE_IN_ADDRESS = re.compile(r"[A-Z]\d{0,2}[市区县州]")
_CODE_PREFIX = re.compile(r"^(?:[A-Z]\d{0,2}[市区县州])+")
# Address: a run of name characters that ends in a place unit (路, 村, 小区, 医院 …), cut at function words, at
# punctuation, before the first place code and after verbs such as 投诉/位于. Units followed by what makes them
# ordinary words (路灯, 村民, 城管) do not count.
_UNITS = (
    "农贸市场", "交叉口", "路口", "路段", "大道", "街道", "社区", "小区", "花园", "家园", "新村", "公寓", "大厦",
    "广场", "公园", "山庄", "商场", "市场", "医院", "卫生院", "小学", "中学", "大学", "学校", "幼儿园", "火车站",
    "汽车站", "车站", "片区", "开发区", "工业园", "支局",
    "路", "街", "巷", "镇", "乡", "村", "组", "苑", "城", "园", "厂",
)
# a unit with one of these right after or right before it is part of an everyday word (路灯, 村民, 城乡, 道路)
_NOT_A_PLACE_AFTER = {
    "路": "灯面边况线费上过人由径途", "街": "头坊", "村": "民里委级医干", "镇": "长", "城": "市管乡区镇",
    "园": "林艺丁", "组": "织长成合建", "厂": "家长商",
}
_NOT_A_PLACE_BEFORE = {
    "乡": "城下家老", "村": "农乡", "路": "道马公铁线网熟无出思套门走", "街": "上条", "城": "县进",
    "园": "校菜果乐", "路口": "字", "镇": "城乡",
}
# units that name a kind of place, not a place: alone they need a cue word before them
_GENERIC_UNITS = {
    "学校", "医院", "卫生院", "小学", "中学", "大学", "幼儿园", "市场", "商场", "车站", "社区", "小区", "街道",
    "广场", "公园", "片区",
}
_UNIT = re.compile("|".join(sorted(_UNITS, key=len, reverse=True)))
_NAMED_UNITS = {u for u in _UNITS if len(u) > 1} - _GENERIC_UNITS
_CLAUSE_BREAK = re.compile(r"[^\u4e00-\u9fffA-Za-z0-9]+")
# characters that never sit inside a place name here: they end a run of name characters
_FUNCTION_CHARS = set(
    "的在是我你他她们有了请问求被把给让从要说想就都也还又很吗呢吧啊呀这那该此其"
    "为对到去和与及或等没不已将能会可以所因但而如若于由"
)
_LEAD_WORDS = re.compile(
    "^.*(?:投诉|反映|举报|质疑|咨询|希望|建议|请求|要求|查处|位于|地处|居住|住在|家住|来自|属于|关于|呼吁|加强|"
    "解决|处理|整治|取缔|清理|延后|提请|请问|申请|办理|购买|入住|搬迁至|搬到|一名|一位|业主|家长|根据|通过|"
    "经过|按照|依据|参加|造成|导致)"
)
_NOT_A_NAME_START = ("县级", "市级", "省级", "乡级", "村级", "区级", *"本该这那各每全整我你他其此某有")
_CUES_BEFORE = set("在于到至住的是")
_NUMBER_PART = re.compile(r"[\d一二三四五六七八九十]+(?:号|栋|幢|单元|楼|组|室)")
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


def is_city_wide(district: str | None) -> bool:
    """True for no district or the whole city (A市); False for a district or county (A3区, K8县, A9市)."""
    return not district or bool(_CITY.fullmatch(district))


def _best_address(text: str) -> str | None:
    candidates = [c for clause in _CLAUSE_BREAK.split(text[:800]) for c in _clause_addresses(clause)]
    if not candidates:
        return None
    # the most specific place; among equals the first (the title's, usually the subject of the message)
    _, best = max(enumerate(candidates), key=lambda numbered: (numbered[1].score, -numbered[0]))
    return best.text


@dataclass(frozen=True)
class _Candidate:
    text: str
    score: int


def _clause_addresses(clause: str) -> list[_Candidate]:
    candidates = []
    start = 0
    for end in [i for i, char in enumerate(clause) if char in _FUNCTION_CHARS] + [len(clause)]:
        cue = start == 0 or clause[start - 1] in _CUES_BEFORE
        candidate = _run_address(clause[start:end], cue)
        if candidate is not None:
            candidates.append(candidate)
        start = end + 1
    return candidates


def _run_address(run: str, cue: bool) -> _Candidate | None:
    """The place in one run of name characters, or None: up to its last place unit (and a house number after it)."""
    units = [m for m in _UNIT.finditer(run) if not _ordinary_word(run, m)]
    if not units:
        return None
    last = units[-1]
    end = last.end()
    while number := _NUMBER_PART.match(run, end):
        end = number.end()
    code = _CODE_IN_ADDRESS.search(run[:last.start()])
    lead = _LEAD_WORDS.match(run[:end])
    begin = code.start() if code else lead.end() if lead else 0
    place = run[begin:end]
    name = _CODE_PREFIX.sub("", place)
    if len(name) - len(last.group(0)) < 2 or name.startswith(_NOT_A_NAME_START):
        return None
    unit_count = sum(1 for m in units if m.start() >= begin)
    numbered = _NUMBER_PART.search(place) is not None
    named_unit = last.group(0) in _NAMED_UNITS
    if not (code or numbered or named_unit or unit_count > 1) and not (cue and len(name) <= 8):
        return None
    return _Candidate(place, 3 * bool(code) + 2 * numbered + min(unit_count, 3) + named_unit)


def _ordinary_word(run: str, unit: re.Match[str]) -> bool:
    """路灯, 村民, 城管, 城乡, 道路 …: the unit is part of an everyday word, not the end of a place name."""
    after = run[unit.end():unit.end() + 1]
    before = run[unit.start() - 1:unit.start()] if unit.start() else ""
    word = unit.group(0)
    if word == "路" and before.isdigit():  # 1路, 202路: a bus line
        return True
    return bool(after and after in _NOT_A_PLACE_AFTER.get(word, "")) or bool(
        before and before in _NOT_A_PLACE_BEFORE.get(word, ""))


def assess_urgency(text: str) -> UrgencyFinding:
    emergency = [t for t in _EMERGENCY_TERMS if t in text]
    if emergency:
        return UrgencyFinding(Urgency.EMERGENCY, emergency)
    elevated = [t for t in _ELEVATED_TERMS if t in text]
    return UrgencyFinding(Urgency.ELEVATED if elevated else Urgency.NONE, elevated)
