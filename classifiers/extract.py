"""Where and how urgent: district and address from the text, and urgency terms that raise priority.

The data's places are anonymised codes (A市, A3区, K8县); real deployments swap in the city's gazetteer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contracts import Urgency

_DISTRICT = re.compile(r"(?<![A-Za-z0-9])([A-Z]\d{1,2}[区县市])")
_CITY = re.compile(r"(?<![A-Za-z0-9])([A-Z]市)")
HOME_CITY = "A市"  # the data's city; other letters are other prefectures, their districts share the letter (K8县)
# a code right after an estate or car-park word, or right before a building number, labels a phase or zone of an
# estate (万科城A1区3栋, 地下车库B2区), not a district
_ESTATE_BEFORE = re.compile("(?:城|园|苑|庭|府|湾|期|小区|车库|地下|停车场)$")
_BUILDING_AFTER = re.compile(r"\d+(?:栋|号楼|单元)")
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
_EMERGENCY_TERMS = ("燃气泄漏", "煤气泄漏", "天然气泄漏", "液化气泄漏", "燃气泄露", "煤气泄露", "天然气泄露",
                    "液化气泄露", "煤气味", "燃气味", "天然气味", "漏气", "着火", "起火", "失火", "火灾", "爆炸",
                    "倒塌", "坍塌", "被困", "电梯困人", "困人", "触电", "溺水", "塌陷", "危及生命",
                    *(f"{gas}管道{leak}" for gas in ("燃气", "煤气", "天然气") for leak in ("泄漏", "泄露")))
_ELEVATED_TERMS = ("安全隐患", "漏水", "积水", "停水", "停电", "断电", "危险", "老人", "儿童", "孕妇", "拖欠工资",
                   "欠薪", "围堵", "堵塞", "隐患")
# every start position, so a term inside a straddling one is still found (3起火灾: 起火 refused, 火灾 kept)
_EMERGENCY = re.compile("(?=(" + "|".join(sorted(_EMERGENCY_TERMS, key=len, reverse=True)) + "))")
# a term that is only part of other words: 看着火车, 信息大爆炸, 被困扰, 贫困人口, 特困人员, 引起火灾, 3起火灾; a
# match refuses only the term it covers (引起火灾 keeps 火灾), and a number before 起火 is a room (302起火了)
_WORD_CLASH = re.compile(r"着火(?=[车锅腿箭柴炉把候])|(?:信息|知识|人口|数据|垃圾)大?爆炸|被困(?=[扰惑])|"
                         r"(?<=[贫特])困人|困人(?=[口员群])|(?<=[引挑])起火|起火(?=灾)|"
                         r"(?:(?<!好)像|如同|仿佛|犹如).{0,6}爆炸")
_GAS = re.compile("燃气|煤气|天然气|液化气")
_GAS_NEAR = 12  # 漏气 is a gas leak only with a gas word this close (轮胎漏气 is not) …
# … or with a kitchen, a home or a smell this close and no tyre, heating or balloon (家里厨房漏气了，味道很大)
_GAS_HINT = re.compile("厨房|家里|家中|屋里|室内|灶|味道|气味|异味|味儿|臭味")
_NOT_GAS = re.compile("胎|轮|车|暖气|气球|气门|充气|打气|空调")
# a negation a few characters before the term, with no 就/才/后 … between (没多久就着火, 没一会起火 are none); 没想到,
# 没关, 无人机, 无故, 是不是, 不是第一次 are no negations
_NEGATED = re.compile(r"(?:没有|没(?!一会|多久|过多久|想到|料到|关)|无(?![数法比论故缘端]|人机)|(?<!是)不是(?![第头])|"
                      r"未(?!成年|来)|并非)[^就才久后又便]{0,3}$")
# What makes a term a risk, a supposition or a past or general event rather than something happening now: words
# before it in its clause (一旦, 可能会, 快要, 去年, 曾, a count: 3起火灾 …), words after it in its clause (隐患, 风险,
# 事件 …), or 危险 or 过 right after it (有倒塌危险, 倒塌过; not 被困过了一个小时). Such a term counts as ELEVATED.
# A date (3月5日) does not: a caller may date what is happening now.
_NOT_NOW_BEFORE = re.compile(
    "一旦|一但|如果|假如|倘若|如发生|若发生|万一|试想|可能(?:会|导致|引发|引起|造成|发生|出现|存在|要|就)|说不定|随时|"
    "快要|即将|容易|极易|防止|预防|防范|避免|以防|以免|担心|(?<![可恐])怕|难道|要等|等到|将会|将被|就会|"
    r"曾|发生过|以前|之前|当时|去年|前年|年前|早几年|历经|经常|多次|数次|接二连三|报道|新闻|全国|各地|"
    r"(?:19|20)\d\d年|[\d两二三四五六七八九十几数多]起$")
# A hedge (可能燃气泄漏, 是不是着火了) is a caller unsure of what is happening now: ELEVATED alone, but EMERGENCY
# with a sign of the present in the rest of the sentence (了 right after the term, a smell, smoke, 快来 …). When in
# doubt a present report is an emergency: a false alarm costs a call-back, a miss costs lives.
_HEDGE_BEFORE = re.compile("可能|恐怕|是不是|是否|会不会")
_PRESENT_SIGN = re.compile("^[了啦]|味道|气味|异味|味儿|闻到|浓烟|冒烟|烟很大|火势|火很大|快来|快派|赶紧|赶快|救命|"
                           "正在|现在|有人受伤")
_NOT_NOW_AFTER = re.compile("隐患|风险|都有可能|可能性|事件|案例|频发|多发")
_NOT_NOW_RIGHT_AFTER = re.compile("的?危险(?!品)|过(?![来去了])")
_URGENCY_CLAUSE_BREAK = re.compile(r"[，。！？；：,.!?;:\n\r]")  # not 、: 火灾、触电的隐患 is one clause
_SENTENCE_BREAK = re.compile(r"[。！？；!?;\n\r]")
_CLAUSE_REACH = 40  # characters looked at either side of a term: a clause is rarely longer, and long texts stay fast


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
    district = next((m.group(1) for m in _DISTRICT.finditer(text) if not _estate_label(text, m)), hint)
    city_match = _CITY.search(text)
    return Place(
        district=district,
        city=city_match.group(1) if city_match else None,
        address=_best_address(text),
    )


def _estate_label(text: str, code: re.Match[str]) -> bool:
    return bool(_ESTATE_BEFORE.search(text, 0, code.start()) or _BUILDING_AFTER.match(text, code.end()))


def is_city_wide(district: str | None) -> bool:
    """True for no district or the whole home city (A市); False for a district or county (A3区, K8县, A9市) and for
    another prefecture (K市), which is only as wide as its own districts (see same_area)."""
    return not district or district == HOME_CITY


def same_area(first: str | None, second: str | None) -> bool:
    """Two calls' places may be the same place: the same district, one placed nowhere, or one placed only in the
    city the other lies in (K市 and K8县; A市 and A3区 or a district named without a code)."""
    if first == second or not first or not second:
        return True
    return _covers(first, second) or _covers(second, first)


def _covers(city: str, place: str) -> bool:
    return bool(_CITY.fullmatch(city)) and city_of(place) == city


def city_of(district: str) -> str:
    """The city a place lies in by its code's letter (K8县 -> K市); the home city for a place without a code."""
    code = _CODE_IN_ADDRESS.fullmatch(district)
    return f"{district[0]}市" if code else HOME_CITY


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
    """EMERGENCY for an emergency term that reports something happening now. A negated term (没有燃气泄漏) does
    not count; one supposed, named as a risk or told of the past (一旦失火, 存在火灾隐患, 去年发生火灾) is ELEVATED."""
    clashes = [m.span() for m in _WORD_CLASH.finditer(text)]
    emergency: list[str] = []
    not_now: list[str] = []
    covered = 0  # the end of the last term taken: 困人 inside 电梯困人 is not a second term
    for match in _EMERGENCY.finditer(text):
        term, start = match.group(1), match.start()
        end = start + len(term)
        if end <= covered or any(s <= start and end <= e for s, e in clashes):
            continue
        covered = end
        if term == "漏气" and not _near_gas(text, start, end):
            continue
        before, _ = _clause_around(text, start, end)
        if _NEGATED.search(before):
            continue
        found = emergency if _happening_now(text, start, end) else not_now
        if term not in found:
            found.append(term)
    if emergency:
        return UrgencyFinding(Urgency.EMERGENCY, emergency)
    elevated = not_now + [t for t in _ELEVATED_TERMS if t in text]
    return UrgencyFinding(Urgency.ELEVATED if elevated else Urgency.NONE, elevated)


def _happening_now(text: str, start: int, end: int) -> bool:
    before, after = _clause_around(text, start, end)
    if _NOT_NOW_BEFORE.search(before) or _NOT_NOW_AFTER.search(after) or _NOT_NOW_RIGHT_AFTER.match(after):
        return False
    return not _HEDGE_BEFORE.search(before) or bool(_PRESENT_SIGN.search(_sentence_after(text, end)))


def _clause_around(text: str, start: int, end: int) -> tuple[str, str]:
    """The term's clause, at most _CLAUSE_REACH characters either side: its text before the term and after it."""
    before = text[max(0, start - _CLAUSE_REACH):start]
    after = text[end:end + _CLAUSE_REACH]
    breaks_before = [m.end() for m in _URGENCY_CLAUSE_BREAK.finditer(before)]
    after_break = _URGENCY_CLAUSE_BREAK.search(after)
    return before[breaks_before[-1] if breaks_before else 0:], after[:after_break.start() if after_break else None]


def _sentence_after(text: str, end: int) -> str:
    """The rest of the term's sentence, across commas (漏气了，味道很大), at most _CLAUSE_REACH characters."""
    after = text[end:end + _CLAUSE_REACH]
    sentence_end = _SENTENCE_BREAK.search(after)
    return after[:sentence_end.start() if sentence_end else None]


def _near_gas(text: str, start: int, end: int) -> bool:
    before, after = _clause_around(text, start, end)
    near_before, near_after = before[-_GAS_NEAR:], _sentence_after(text, end)[:_GAS_NEAR]
    if _GAS.search(near_before) or _GAS.search(after[:_GAS_NEAR]):
        return True
    hint = _GAS_HINT.search(near_before) or _GAS_HINT.search(near_after)
    return bool(hint) and not (_NOT_GAS.search(near_before) or _NOT_GAS.search(after[:_GAS_NEAR]))
