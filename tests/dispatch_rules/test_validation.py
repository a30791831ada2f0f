"""A broken rule set is rejected with errors that name the table (file), the row and the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatch_rules.bundle import RuleBundle
from dispatch_rules.compiler import RuleError, RulesValidationError, compile_rules, validate_bundle
from dispatch_rules.jdm import Interval, condition_problems, parse_condition, referenced_fields
from dispatch_rules.router import DecisionTableRouter

from .conftest import call, column, edit_table, rule, set_output


def errors_of(bundle: RuleBundle) -> list[RuleError]:
    report = validate_bundle(bundle)
    assert report.errors, "expected the bundle to be rejected"
    with pytest.raises(RulesValidationError):
        compile_rules(bundle)
    return report.errors


def only(errors: list[RuleError]) -> RuleError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_the_shipped_rules_are_valid_without_warnings(shipped: RuleBundle) -> None:
    report = validate_bundle(shipped)
    assert report.errors == [] and report.warnings == []


def test_bad_json_names_the_file_and_position(shipped: RuleBundle) -> None:
    broken = shipped.replace("priority.json", shipped.files["priority.json"][:-40])
    error = only(errors_of(broken))
    assert error.table == "priority.json" and "not valid JSON" in error.message and "line" in error.message


def test_unknown_department_role(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "department.json", lambda c: set_output(c, "hl.hb.default", "role", "环保"))
    error = only(errors_of(bundle))
    assert (error.table, error.field) == ("department.json", "role")
    assert error.row is not None and error.row.startswith("hl.hb.default (#") and "环保" in error.message


def test_unknown_co_handler_role(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "department.json",
                        lambda c: set_output(c, "cam.fire_smoke", "co_handlers", ["应急管理", "防汛办"]))
    error = only(errors_of(bundle))
    assert (error.table, error.field) == ("department.json", "co_handlers") and "防汛办" in error.message
    assert error.row and error.row.startswith("cam.fire_smoke")


def test_unknown_category_and_district_literals(shipped: RuleBundle) -> None:
    def edit(content: dict[str, Any]) -> None:
        rule(content, "hl.hb.default")[column(content, "category")] = '"环境保护", "环境保户"'
        rule(content, "hl.jt.default")[column(content, "district")] = '"A3区", "Z9区"'

    errors = errors_of(edit_table(shipped, "department.json", edit))
    found = {(e.table, (e.row or "").split(" ")[0], e.field) for e in errors}
    assert ("department.json", "hl.hb.default", "category") in found
    assert ("department.json", "hl.jt.default", "district") in found
    assert any("环境保户" in e.message for e in errors) and any("Z9区" in e.message for e in errors)


def test_condition_that_does_not_parse(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "priority.json",
                        lambda c: rule(c, "pr.wage_arrears").__setitem__(column(c, "text"), 'contains($, "欠薪"'))
    error = only(errors_of(bundle))
    assert (error.table, error.field) == ("priority.json", "text") and "does not parse" in error.message
    assert error.row and error.row.startswith("pr.wage_arrears")


def test_required_output_empty(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "priority.json",
                        lambda c: rule(c, "pr.elevated").__setitem__(column(c, "priority", "outputs"), ""))
    error = only(errors_of(bundle))
    assert (error.table, error.field) == ("priority.json", "priority") and "required output empty" in error.message
    assert error.row and error.row.startswith("pr.elevated")


def test_row_without_rule_id_is_named_by_position(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "direct_answer.json",
                        lambda c: c["rules"][1].__setitem__(column(c, "rule_id", "outputs"), ""))
    error = only(errors_of(bundle))
    assert (error.table, error.field) == ("direct_answer.json", "rule_id") and error.row and "(#2)" in error.row


def test_bad_output_values(shipped: RuleBundle) -> None:
    def deadline(content: dict[str, Any]) -> None:
        set_output(content, "dl.hotline.high", "deadline_hours", 0)

    error = only(errors_of(edit_table(shipped, "deadline.json", deadline)))
    assert (error.table, error.field) == ("deadline.json", "deadline_hours")
    both = only(errors_of(edit_table(shipped, "deadline.json",
                                     lambda c: set_output(c, "dl.hotline.normal", "deadline_hours", 72))))
    assert "exactly one" in both.message and both.row and "dl.hotline.normal" in both.row
    too_many = only(errors_of(edit_table(shipped, "deadline.json",
                                         lambda c: set_output(c, "dl.hotline.low", "deadline_working_days", 61))))
    assert (too_many.field, "at most 60" in too_many.message) == ("deadline_working_days", True)
    error = only(errors_of(edit_table(shipped, "priority.json",
                                      lambda c: set_output(c, "pr.default", "priority", "whenever"))))
    assert (error.table, error.field) == ("priority.json", "priority") and "whenever" in error.message


def test_identical_rows_in_a_first_hit_table(shipped: RuleBundle) -> None:
    def duplicate(content: dict[str, Any]) -> None:
        copy = dict(rule(content, "hl.ld.default"))
        copy[column(content, "rule_id", "outputs")] = json.dumps("hl.ld.copy")
        content["rules"].insert(content["rules"].index(rule(content, "hl.ld.default")) + 1, copy)

    error = only(errors_of(edit_table(shipped, "department.json", duplicate)))
    assert error.table == "department.json" and error.row and error.row.startswith("hl.ld.copy")
    assert "same conditions as row hl.ld.default" in error.message


def test_general_row_above_a_specific_one_pre_empts_it(shipped: RuleBundle) -> None:
    def move_default_up(content: dict[str, Any]) -> None:
        default = rule(content, "hl.cx.default")
        content["rules"].remove(default)
        content["rules"].insert(content["rules"].index(rule(content, "hl.cx.street_order")), default)

    errors = errors_of(edit_table(shipped, "department.json", move_default_up))
    shadowed = {(e.row or "").split(" ")[0] for e in errors}
    assert {"hl.cx.street_order", "hl.cx.sanitation", "hl.cx.public_transport", "hl.cx.water_supply"} <= shadowed
    assert all("pre-empted by row hl.cx.default" in e.message for e in errors)


def test_overlapping_rows_in_an_exclusive_table(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "deadline.json",
                        lambda c: rule(c, "dl.camera.low").__setitem__(column(c, "priority"), '"low", "normal"'))
    error = only(errors_of(bundle))
    assert error.table == "deadline.json" and error.row and error.row.startswith("dl.camera.low")
    assert "overlaps row dl.camera.normal" in error.message


def test_gap_a_taxonomy_category_without_a_row(shipped: RuleBundle) -> None:
    def drop(content: dict[str, Any]) -> None:
        category = column(content, "category")
        content["rules"] = [r for r in content["rules"] if "环境保护" not in r.get(category, "")]

    errors = errors_of(edit_table(shipped, "department.json", drop))
    gap = [e for e in errors if "gap" in e.message]
    assert len(gap) == 1 and gap[0].table == "department.json" and gap[0].field == "category"
    assert "环境保护" in gap[0].message


def test_gap_missing_deadline_and_missing_catch_all(shipped: RuleBundle) -> None:
    def drop(content: dict[str, Any]) -> None:
        content["rules"].remove(rule(content, "dl.camera.low"))

    error = only(errors_of(edit_table(shipped, "deadline.json", drop)))
    assert (error.table, error.field) == ("deadline.json", "priority") and "camera" in error.message
    error = only(errors_of(edit_table(shipped, "priority.json",
                                      lambda c: c["rules"].remove(rule(c, "pr.default")))))
    assert error.table == "priority.json" and "catch-all" in error.message


def test_structure_errors(shipped: RuleBundle) -> None:
    error = only(errors_of(edit_table(shipped, "priority.json", lambda c: c.__setitem__("hitPolicy", "collect"))))
    assert (error.table, error.field) == ("priority.json", "hitPolicy")
    error = only(errors_of(edit_table(shipped, "priority.json",
                                      lambda c: c["inputs"][0].__setitem__("field", "caller_mood"))))
    assert (error.table, error.field) == ("priority.json", "caller_mood")
    graph = json.loads(shipped.files["deadline.json"])
    graph["edges"] = graph["edges"][:1]
    error = only(errors_of(shipped.replace("deadline.json", json.dumps(graph))))
    assert (error.table, error.field) == ("deadline.json", "edges")


def test_rule_ids_are_unique_across_tables(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "direct_answer.json", lambda c: set_output(c, "da.default", "rule_id", "pr.default"))
    error = only(errors_of(bundle))
    assert (error.table, error.field) == ("direct_answer.json", "rule_id") and "priority.json" in error.message


def test_manifest_and_directory_errors(shipped: RuleBundle) -> None:
    manifest = shipped.files["ruleset.yaml"].replace("min_confidence:", "min_confidance:")
    errors = errors_of(shipped.replace("ruleset.yaml", manifest))
    assert {e.table for e in errors} == {"ruleset.yaml"} and {"min_confidance", "min_confidence"} <= {
        e.field for e in errors}
    directory = shipped.files["directory.yaml"].replace("A市: [A1区,", "A市: [B1区, A1区,")
    errors = errors_of(shipped.replace("directory.yaml", directory))
    assert errors[0].table == "directory.yaml" and "B1区" in errors[0].message


@pytest.mark.parametrize("file", ["ruleset.yaml", "directory.yaml", "calendar.yaml", "taxonomy.yaml"])
@pytest.mark.parametrize("text", ["", "# only a comment\n", "null\n", "~"])
def test_an_empty_yaml_file_is_named(shipped: RuleBundle, file: str, text: str) -> None:
    error = only(errors_of(shipped.replace(file, text)))
    assert (error.table, error.message) == (file, "file is empty")


def test_an_unknown_time_zone_is_a_manifest_field_error(shipped: RuleBundle) -> None:
    manifest = shipped.files["ruleset.yaml"].replace("timezone: Asia/Shanghai", "timezone: Asia/Beijing")
    error = only(errors_of(shipped.replace("ruleset.yaml", manifest)))
    assert (error.table, error.field) == ("ruleset.yaml", "timezone") and "Asia/Beijing" in error.message


def test_a_backslash_escape_in_a_cell_is_rejected(shipped: RuleBundle) -> None:
    """ZEN reads no escapes: json.dumps' default \\u escapes would never match / name an unknown role."""
    def escaped(content: dict[str, Any]) -> None:
        rule(content, "hl.cx.default")[column(content, "role", "outputs")] = json.dumps("城管")
        rule(content, "hl.hb.default")[column(content, "category")] = json.dumps("环境保护")

    errors = errors_of(edit_table(shipped, "department.json", escaped))
    found = {((e.row or "").split(" ")[0], e.field) for e in errors if "escapes" in e.message}
    assert found == {("hl.cx.default", "role"), ("hl.hb.default", "category")}


def test_a_regex_may_keep_its_backslashes(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "priority.json", lambda c: rule(c, "pr.wage_arrears").__setitem__(
        column(c, "text"), r'contains($, "欠薪") or matches($, "拖欠\d+个月")'))
    assert validate_bundle(bundle).ok


@pytest.mark.parametrize(("file", "rule_id", "field", "cell"), [
    ("priority.json", "pr.emergency", "urgency", "emergency"),
    ("department.json", "hl.cx.default", "source", "hotline"),
    ("department.json", "cam.flooding", "kind", '"road_damage", flooding'),
])
def test_a_bare_word_in_a_condition_is_rejected(shipped: RuleBundle, file: str, rule_id: str, field: str,
                                                cell: str) -> None:
    """ZEN reads `emergency` as a variable (null): the row would never fire (a gas leak at normal priority)."""
    bundle = edit_table(shipped, file, lambda c: rule(c, rule_id).__setitem__(column(c, field), cell))
    error = only([e for e in errors_of(bundle) if "not quoted" in e.message])
    assert (error.table, error.field) == (file, field) and error.row and error.row.startswith(rule_id)
    word = cell.split(", ")[-1]
    assert f'write "{word}"' in error.message


@pytest.mark.parametrize("cell", ['not contains($, "x") and len($) > 2', "$ != null", '"a" in $', "true",
                                  'startsWith($, "建议")', "[7..9]", ">= 0.8", 'some($, # == "a")'])
def test_functions_and_zen_words_are_not_bare_words(cell: str) -> None:
    assert condition_problems(cell) == []


@pytest.mark.parametrize("cell", ['$ == "城乡建设" and confidence >= 0.5',
                                  '$ == "城乡建设" and $root.confidence >= 0.5', "> 1_000", "[1_000..2_000.5]"])
def test_input_fields_root_and_grouped_digits_are_not_bare_words(shipped: RuleBundle, cell: str) -> None:
    """ZEN reads another input field by name, $root as the whole case, and 1_000 as a thousand."""
    assert condition_problems(cell, {"category", "confidence"}) == []
    bundle = edit_table(shipped, "department.json",
                        lambda c: rule(c, "hl.cx.default").__setitem__(column(c, "category"), cell))
    assert not [e for e in validate_bundle(bundle).errors if "not quoted" in e.message]


def test_a_field_of_no_table_is_still_a_bare_word() -> None:
    assert "confdence is not quoted" in condition_problems("$ > 1 and confdence >= 0.5", {"confidence"})[0]


def test_grouped_digits_read_as_numbers() -> None:
    assert parse_condition("> 1_000") == Interval(lo=1000.0)
    assert parse_condition("[1_000..2_000.5]") == Interval(1000.0, True, 2000.5, True)


def test_the_fields_a_condition_reads_by_name() -> None:
    cell = '$ == "x" and confidence > 0.5 or $root.sub_category == "y" or contains(text, "category")'
    assert referenced_fields(cell) == {"confidence", "sub_category", "text"}


@pytest.mark.parametrize(("setting", "value"), [
    ("executionMode", "loop"), ("inputField", "case"), ("outputPath", "result"),
])
def test_decision_table_node_settings(shipped: RuleBundle, setting: str, value: object) -> None:
    """Each of these would send every case to the manual queue."""
    error = only(errors_of(edit_table(shipped, "priority.json", lambda c: c.__setitem__(setting, value))))
    assert (error.table, error.field) == ("priority.json", setting) and repr(value) in error.message


def test_pass_through_from_the_editor_is_ignored_so_no_text_reaches_the_explanation(shipped: RuleBundle) -> None:
    bundle = edit_table(shipped, "department.json", lambda c: c.__setitem__("passThrough", True))
    rules = compile_rules(bundle, "pass-through")
    assert [w.field for w in rules.warnings] == ["passThrough"]
    decision = DecisionTableRouter(rules).route_call(call("城乡建设", "我住A3区XX路5号，电话不通，路灯坏了"))
    assert "XX路5号" not in json.dumps(decision.explanation, ensure_ascii=False)


def test_a_district_alias_in_a_cell_is_rejected(shipped: RuleBundle) -> None:
    """The router hands the tables the directory's code (C3县 for a call written C3区): a C3区 cell never matches."""
    bundle = edit_table(shipped, "department.json", lambda c: rule(c, "hl.jt.default").__setitem__(
        column(c, "district"), '"A3区", "C3区"'))
    error = only(errors_of(bundle))
    assert (error.table, error.field) == ("department.json", "district") and 'write "C3县"' in error.message


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_non_finite_deadline_is_a_row_error(shipped: RuleBundle, value: str) -> None:
    bundle = edit_table(shipped, "deadline.json", lambda c: rule(c, "dl.camera.low").__setitem__(
        column(c, "deadline_hours", "outputs"), value))
    error = errors_of(bundle)[0]
    assert (error.table, error.field) == ("deadline.json", "deadline_hours") and value.lstrip("-") in error.message
    assert error.row and error.row.startswith("dl.camera.low")
