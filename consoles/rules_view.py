"""What the analyst console shows: rule-set versions, their decision tables as rows, and backtests."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from dispatch_rules.backtest import BacktestResult, backtest, cases_from_tickets
from dispatch_rules.bundle import DEFAULT_TABLES_DIR, TABLE_NAMES, RuleBundle, TableName
from dispatch_rules.compiler import CompiledRules, RuleError, RulesValidationError, compile_rules
from dispatch_rules.versions import RuleStore, RuleStoreError, VersionInfo
from tickets.store import TicketStore

TABLE_TITLES: dict[TableName, str] = {
    "department": "承办部门 department", "priority": "优先级 priority", "deadline": "办理时限 deadline",
    "direct_answer": "可直接答复 direct answer",
}
BACKTEST_TICKET_LIMIT = 5000


@dataclass(frozen=True)
class RowView:
    number: int
    rule_id: str | None
    description: str
    conditions: list[tuple[str, str]]
    outputs: list[tuple[str, str]]


@dataclass(frozen=True)
class TableView:
    name: TableName
    title: str
    file: str
    hit_policy: str
    inputs: list[str]
    rows: list[RowView]


def _literal(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def table_views(rules: CompiledRules) -> list[TableView]:
    views = []
    for name in TABLE_NAMES:
        table = rules.tables[name]
        rows = [RowView(number=row.index + 1, rule_id=row.rule_id, description=row.description,
                        conditions=list(row.cells.items()),
                        outputs=[(k, _literal(v)) for k, v in row.outputs.items() if k != "rule_id"])
                for row in table.rows]
        views.append(TableView(name, TABLE_TITLES[name], table.file, table.hit_policy, table.input_fields, rows))
    return views


class RulesCatalogue:
    """Versions and their compiled rules for the console; compiled versions are cached (they never change)."""

    def __init__(self, store: TicketStore, cache_size: int = 4) -> None:
        self.rules = RuleStore(store.engine)
        self.tickets = store
        self._cache: OrderedDict[int, CompiledRules] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def versions(self) -> list[VersionInfo]:
        self.rules.ensure_default(DEFAULT_TABLES_DIR)
        return self.rules.versions()

    def active_id(self) -> int:
        self.rules.ensure_default(DEFAULT_TABLES_DIR)
        active = self.rules.active_version_id()
        if active is None:
            raise RuleStoreError("no active rule version")
        return active

    def compiled(self, version_id: int) -> CompiledRules:
        with self._lock:
            cached = self._cache.get(version_id)
            if cached is not None:
                self._cache.move_to_end(version_id)
                return cached
        compiled = self.rules.compiled(version_id)
        with self._lock:
            self._cache[version_id] = compiled
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def bundle(self, version_id: int) -> RuleBundle:
        return self.rules.bundle(version_id)

    def backtest_version(self, version_id: int) -> BacktestResult:
        active = self.compiled(self.active_id())
        proposed = self.compiled(version_id)
        return self._run(active, proposed, f"v{version_id}")

    def backtest_file(self, file_name: str, text: str) -> BacktestResult:
        """One edited file of the active rule set (e.g. department.json) against the active set."""
        active_id = self.active_id()
        base = self.bundle(active_id)
        if file_name not in base.files:
            raise RulesValidationError([RuleError(table=file_name, message=(
                f"{file_name} is not a file of the rule set (files: {', '.join(sorted(base.files))})"))])
        proposed = compile_rules(base.replace(file_name, text), label=f"proposed:{file_name}")
        return self._run(self.compiled(active_id), proposed, file_name)

    def _run(self, active: CompiledRules, proposed: CompiledRules, what: str) -> BacktestResult:
        cases = cases_from_tickets(self.tickets, BACKTEST_TICKET_LIMIT, active.manifest.timezone)
        return backtest(active, proposed, cases, f"{what} on {len(cases)} stored tickets")
