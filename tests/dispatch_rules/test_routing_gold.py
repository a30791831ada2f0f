"""派单精准度: does a call reach the body that really handled it? Judged on 120 knowledge-base cases whose handler two
blind annotator passes read from the official reply (handler_gold.yaml; 200 more in handler_gold_fresh.yaml), the
calls replayed through the whole text
stage (the configured classifier, sub-categories, place) and the shipped rules, as a live call would be."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dispatch_rules.backtest import cases_from_csv, department_from_reply
from dispatch_rules.compiler import CompiledRules
from dispatch_rules.router import decide
from hotline.pipeline import call_classifier
from hotline.settings import Settings

from ..conftest import SHARED_DIR

NOBODY = ("", "")  # the manual queue, or no department named


def agreed_handlers(gold_file: str) -> dict[str, tuple[str, str]]:
    """(role, place) where both passes name the same directory role and place."""
    gold = yaml.safe_load((Path(__file__).parent / gold_file).read_text(encoding="utf-8"))
    agreed = {}
    for case_id, (first, second) in gold.items():
        if first == second and first not in ("OTHER", "UNCLEAR") and not first.endswith("?"):
            role, place = first.split()
            agreed[str(case_id)] = (role, place)
    return agreed


@pytest.mark.parametrize(("gold_file", "agreed", "floors"), [
    ("handler_gold.yaml", 100, (0.53, 0.36, 0.90, 0.77)),        # measured 0.56, 0.39, 0.92, 0.80
    ("handler_gold_fresh.yaml", 153, (0.53, 0.45, 0.83, 0.70)),  # measured 0.569, 0.484, 0.856, 0.732
])
def test_calls_reach_the_role_that_handled_them(make_e5_settings: Callable[..., Settings], rules: CompiledRules,
                                                tmp_path: Path, gold_file: str, agreed: int,
                                                floors: tuple[float, float, float, float]) -> None:
    """Measured 2026-11-29 (floors below): the shipped tables send a call to a body of the right role for 0.56 / 0.57
    of the cases, the right body for 0.39 / 0.48 (the classifier has 7 classes, the directory 27 roles; city and
    district bureaus both answer). The reply parser that gives `hotline rules backtest` its truth names the
    annotators' role for 0.92 / 0.86, their body for 0.80 / 0.73."""
    gold = agreed_handlers(gold_file)
    assert len(gold) == agreed
    with (SHARED_DIR / "data" / "hotline" / "kb_replies.csv").open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row["留言编号"] in gold]
        fields = reader.fieldnames or []
    calls = tmp_path / "gold_calls.csv"
    with calls.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    classify, _ = call_classifier(make_e5_settings())
    cases, problems = cases_from_csv(calls, classify, rules.directory, rules.manifest.timezone)
    assert problems == []
    routed: dict[str, tuple[str, str] | None] = {}
    parsed: dict[str, tuple[str, str] | None] = {}
    for case in cases:
        outcome = decide(rules, case.inputs, case.classifier_abstained)
        body = rules.directory.by_name.get(outcome.department or "")
        routed[case.case_id] = (body.role, body.place) if body else None
        row = next(r for r in rows if r["留言编号"] == case.case_id)
        named = department_from_reply(row["答复意见"], case.inputs.district, rules.directory)
        parsed[case.case_id] = (named.role, named.place) if named else None
    role_right = sum((routed[i] or NOBODY)[0] == gold[i][0] for i in gold) / len(gold)
    body_right = sum(routed[i] == gold[i] for i in gold) / len(gold)
    assert role_right >= floors[0] and body_right >= floors[1]
    parser_role = sum((parsed[i] or NOBODY)[0] == gold[i][0] for i in gold) / len(gold)
    parser_body = sum(parsed[i] == gold[i] for i in gold) / len(gold)
    assert parser_role >= floors[2] and parser_body >= floors[3]
