"""Urgency terms: an emergency is something happening now; negated, supposed, risk and past mentions are not."""

from __future__ import annotations

import pytest

from classifiers.extract import assess_urgency
from contracts import Urgency


@pytest.mark.parametrize("text", [
    "厨房里闻到很浓的煤气味，怀疑煤气泄露",
    "楼道里天然气泄露了，味道很大",
    "燃气泄露，请马上派人",
    "家里燃气味很重",
    "电梯困人半小时了没人来",
    "楼下饭店失火了，浓烟很大",
    "楼道里燃气泄漏，味道很大！",
    "液化气罐漏气了",
    "没一会就起火了，火很大",
    "3栋发生火灾，有人被困",
    "刚才楼下着火了，看着火很大",
    "现在树倒塌过来压住了车",
])
def test_present_emergencies(text: str) -> None:
    assert assess_urgency(text).level == Urgency.EMERGENCY


@pytest.mark.parametrize("text", [
    "家里没有燃气泄漏，只是想咨询燃气费怎么交",
    "不是火灾，是邻居烧烤的烟飘进来",
    "燃气公司上门检查说没有漏气，但收了检测费",
    "并非爆炸，是放鞭炮",
    "共享单车轮胎漏气一直没人修",
    "看着火车站广场的水迹",
    "虽然这是个信息大爆炸的时代",
    "我们一直被困扰着",
    "贫困人口的补助什么时候发",
    "特困人员救助怎么申请",
])
def test_negated_and_unrelated_words_are_no_emergency(text: str) -> None:
    assert assess_urgency(text).level != Urgency.EMERGENCY


@pytest.mark.parametrize("text,term", [
    ("一旦失火后果无法想象", "失火"),
    ("孩子随意触摸充电桩，可能导致触电", "触电"),
    ("护栏锈迹斑斑，随时可能倒塌", "倒塌"),
    ("电动车在楼道充电，存在火灾隐患", "火灾"),
    ("燃气管道未密封，存在燃气泄漏的风险", "燃气泄漏"),
    ("小区消防通道被堵，万一发生火灾后果不堪设想", "火灾"),
    ("墙体开裂，有倒塌危险", "倒塌"),
    ("去年下半年突发2次火灾", "火灾"),
    ("早几年曾发生过某居民家燃气爆炸事件", "爆炸"),
    ("电梯经常有人被困", "被困"),
])
def test_supposed_risk_and_past_mentions_are_elevated(text: str, term: str) -> None:
    finding = assess_urgency(text)
    assert finding.level == Urgency.ELEVATED and term in finding.terms


def test_a_present_term_outweighs_a_supposed_one_in_another_clause() -> None:
    finding = assess_urgency("楼下着火了，一旦蔓延到燃气管道可能爆炸")
    assert finding.level == Urgency.EMERGENCY and finding.terms == ["着火"]


def test_a_longer_term_is_reported_once() -> None:
    assert assess_urgency("电梯困人了").terms == ["电梯困人"]


@pytest.mark.parametrize("text", [
    "小区发生一起火灾，火势很大",
    "楼道电动车充电引起火灾了，快来人",
    "幸福小区5栋302起火了，浓烟很大",
    "我家601起火了",
    "是不是燃气泄漏了，整栋楼都是味道",
    "电梯困人过了半个小时了还没人来",
    "燃气管道泄漏了，味道很大",
    "天然气管道泄露，快来人",
    "被困过了一个小时",
    "楼道里可能燃气泄漏了，味道很大",
    "恐怕是燃气泄漏，味道很冲",
    "3月5日晚8点小区3号楼起火，火势很大",
    "家里厨房漏气了，味道很大，不敢开灯",
    "漏气了，味道很大",
    "无人机起火",
    "没想到着火了",
    "这已经不是第一次着火了",
    "邻居没关燃气泄漏了",
    "着火的危险品仓库就在我们小区旁边",
])
def test_present_reports_with_clashing_words_hedges_or_dates_stay_emergencies(text: str) -> None:
    assert assess_urgency(text).level == Urgency.EMERGENCY


@pytest.mark.parametrize("text,level", [
    ("家里没有燃气泄漏，只是想咨询燃气费怎么交", Urgency.NONE),
    ("共享单车轮胎漏气一直没人修", Urgency.NONE),
    ("家里自行车轮胎漏气了", Urgency.NONE),
    ("家里暖气漏气，味道很大", Urgency.NONE),
    ("看着火车开过去", Urgency.NONE),
    ("信息大爆炸的时代", Urgency.NONE),
    ("电动车在楼道充电，存在火灾隐患", Urgency.ELEVATED),
    ("一旦失火后果不堪设想", Urgency.ELEVATED),
    ("去年小区发生过一次火灾", Urgency.ELEVATED),
    ("电线老化，可能导致火灾", Urgency.ELEVATED),
    ("电线老化，可能会起火，味道很大", Urgency.ELEVATED),
    ("楼道里可能燃气泄漏", Urgency.ELEVATED),
    ("是不是燃气泄漏", Urgency.ELEVATED),
    ("电梯被困过两次", Urgency.ELEVATED),
    ("2018年小区起火了，至今没有赔偿", Urgency.ELEVATED),
])
def test_clear_non_emergencies_stay_out(text: str, level: Urgency) -> None:
    assert assess_urgency(text).level == level


def test_a_clash_drops_only_the_clashing_term() -> None:
    assert assess_urgency("小区发生一起火灾").terms == ["火灾"]


def test_fires_counted_are_past_events() -> None:
    finding = assess_urgency("今年小区内就发生了3起火灾")
    assert finding.level == Urgency.ELEVATED and finding.terms == ["火灾"]
