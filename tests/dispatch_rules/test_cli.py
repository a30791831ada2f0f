"""`hotline rules …` (the typer sub-app): validate, publish, list, show, rollback, export, backtest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dispatch_rules.bundle import DEFAULT_TABLES_DIR, RuleBundle
from dispatch_rules.cli import rules_app
from dispatch_rules.versions import RuleStore
from hotline.settings import get_settings

from .conftest import edit_table, set_output

runner = CliRunner()


@pytest.fixture
def cli_db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(rules_app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_validate_names_table_row_and_field(cli_db: str, shipped: RuleBundle, tmp_path: Path) -> None:
    code, output = invoke("validate", str(DEFAULT_TABLES_DIR))
    assert code == 0 and "valid" in output
    broken = edit_table(shipped, "department.json", lambda c: set_output(c, "hl.jt.default", "role", "交通局"))
    path = tmp_path / "department.json"
    path.write_text(broken.files["department.json"], encoding="utf-8")
    code, output = invoke("validate", str(path))  # one edited table, checked with the active version's others
    assert code == 1 and "department.json" in output and "hl.jt.default" in output and "role" in output


def test_publish_list_show_rollback_export(cli_db: str, shipped: RuleBundle, tmp_path: Path) -> None:
    folder = tmp_path / "proposed"
    edit_table(shipped, "department.json", lambda c: set_output(c, "hl.cx.default", "role", "城管")).write(folder)
    code, output = invoke("publish", str(folder), "--author", "analyst-li", "--note", "城乡建设 to 城管")
    assert code == 0 and "published v2-" in output and "rollback 1" in output
    code, output = invoke("list", "--history", "5")
    assert code == 0 and "v1-" in output and "v2-" in output and "analyst-li" in output and "default" in output
    code, output = invoke("show", "--table", "department")
    assert code == 0 and "hl.cx.default" in output and "城管" in output
    code, output = invoke("rollback")
    assert code == 0 and "active again: v1-" in output
    assert RuleStore.open(cli_db, migrate=False).active_version_id() == 1
    code, output = invoke("export", str(tmp_path / "exported"))
    assert code == 0 and (tmp_path / "exported" / "department.json").read_text(encoding="utf-8") == \
        shipped.files["department.json"]


def test_publish_rejects_a_broken_table_and_keeps_the_active_version(cli_db: str, shipped: RuleBundle,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "priority.json"
    path.write_text(shipped.files["priority.json"].replace('"hitPolicy": "first"', '"hitPolicy": "collect"'),
                    encoding="utf-8")
    code, output = invoke("publish", str(path), "--author", "analyst-li")
    assert code == 1 and "priority.json" in output and "hitPolicy" in output and "not published" in output
    assert RuleStore.open(cli_db, migrate=False).active_version_id() == 1


def test_backtest_on_stored_tickets_as_json(cli_db: str, shipped: RuleBundle, tmp_path: Path) -> None:
    folder = tmp_path / "proposed"
    two_days = edit_table(shipped, "deadline.json",
                          lambda c: set_output(c, "dl.hotline.normal", "deadline_working_days", 2))
    two_days.write(folder)
    code, output = invoke("backtest", "--rules", str(folder), "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["cases"] == 0 and result["active_version"].startswith("v1-")
    assert result["proposed_version"] == "proposed:proposed"


def test_show_an_unknown_table_is_an_error(cli_db: str) -> None:
    code, output = invoke("show", "--table", "departments")
    assert code == 2 and "Invalid value for '--table'" in output and "department" in output
