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
