"""Validate a rule bundle and compile it for the ZEN engine.

Every problem is a `RuleError` naming the file (table), the row (rule id and position) and the field, so an
analyst can find it in the ZEN editor. A bundle with any error is rejected as a whole: it is never published,
and a router that meets one keeps serving the version it has.

What is checked (see README.md):
  * files: JSON/YAML syntax; the manifest, directory, taxonomy and working-day calendar schemas; the JDM graph
    is input -> one decision table -> output and ZEN itself accepts it; hit policy `first`, no pass-through,
    loop, input field or output path; a time zone ZoneInfo knows;
  * columns: input fields are known case inputs, output fields are the table's outputs, required outputs exist;
  * cells: every condition compiles as a ZEN unary expression and means what it reads (no bare word, which
    ZEN takes for a variable; no backslash escape, which ZEN does not decode); literals are of the field's
    type and domain (known category / sub-category of the taxonomy, district of the directory by its code, not
    an alias; source, event kind, urgency, priority, confidence in [0, 1], hour 0-23); outputs are literals of
    the right type, finite, without escapes: a known department role, co-handler roles, scope, priority,
    deadline hours > 0 or working days 1-60 (one of the two), true/false; required outputs are not empty;
    rule ids are present and unique across the bundle;
  * rows: in a first-hit table a row that an earlier row always pre-empts can never fire; in a table the
    manifest marks `exclusive`, no two rows may match the same case;
  * gaps: every 一级分类 of the taxonomy and every camera event kind has a department row; the priority and
    direct-answer tables end with a catch-all row; the deadline table has a deadline for every source and priority.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
import zen
from pydantic import ValidationError

from contracts import Channel, EventKind, Priority, Source, Urgency
from dispatch_rules.bundle import MANIFEST_FILE, TABLE_NAMES, Manifest, RuleBundle, TableName
from dispatch_rules.calendar import MAX_WORKING_DAYS, WorkCalendar
from dispatch_rules.directory import Directory, DirectorySpec
from dispatch_rules.jdm import (
    AnyValue,
    Column,
    DecisionTable,
    Interval,
    Opaque,
    Row,
    Values,
    condition_problems,
    covers,
    matches,
    may_overlap,
    output_literal,
    parse_condition,
)


@dataclass(frozen=True)
class RuleError:
    table: str  # file name
    message: str
    row: str | None = None  # "<rule id> (#<position>)"
    field: str | None = None

    def __str__(self) -> str:
        where = self.table
        if self.row:
            where += f", row {self.row}"
        if self.field:
            where += f", field {self.field}"
        return f"{where}: {self.message}"


class RulesValidationError(Exception):
    def __init__(self, errors: list[RuleError], warnings: list[RuleError] | None = None) -> None:
        self.errors = errors
        self.warnings = warnings or []
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"rule set rejected, {len(errors)} error(s):\n{lines}")


@dataclass
class ValidationReport:
    errors: list[RuleError] = field(default_factory=list)
    warnings: list[RuleError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --- what the tables may read and write -----------------------------------------------------------------------

STRING, NUMBER, LIST = "string", "number", "list"
INPUT_FIELDS: dict[str, str] = {
    "source": STRING, "channel": STRING, "category": STRING, "sub_category": STRING, "kind": STRING,
    "citymgmt_code": STRING, "district": STRING, "city": STRING, "urgency": STRING, "urgency_terms": LIST,
    "confidence": NUMBER, "hour": NUMBER, "weekday": NUMBER, "text": STRING,
}
EXTRA_INPUTS: dict[TableName, dict[str, str]] = {
    "department": {}, "priority": {}, "deadline": {"priority": STRING}, "direct_answer": {"priority": STRING},
}
OUTPUTS: dict[TableName, dict[str, bool]] = {  # output field -> required
    "department": {"rule_id": True, "role": False, "scope": False, "co_handlers": False, "manual_reason": False},
    "priority": {"rule_id": True, "priority": True},
    "deadline": {"rule_id": True, "deadline_hours": False, "deadline_working_days": False},
    "direct_answer": {"rule_id": True, "direct_answer": True},
}
NUMBER_RANGES = {"confidence": (0.0, 1.0), "hour": (0.0, 23.0), "weekday": (1.0, 7.0)}
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
RULE_ID = re.compile(r"^[\w.:\-]{1,100}$")


class _Context:
    """What literal checks compare against."""

    def __init__(self, directory: Directory | None, taxonomy: dict[str, dict[str, list[str]]] | None) -> None:
        self.directory = directory
        self.categories = list(taxonomy or {})
        self.sub_categories = {
            name for level2 in (taxonomy or {}).values() for sub, level3 in level2.items() for name in [sub, *level3]
        }

    def domain(self, field_name: str) -> set[str] | None:
        directory = self.directory
        domains: dict[str, Callable[[], set[str] | None]] = {
            "source": lambda: {s.value for s in Source},
            "channel": lambda: {c.value for c in Channel},
            "kind": lambda: {k.value for k in EventKind},
            "urgency": lambda: {u.value for u in Urgency},
            "priority": lambda: {p.value for p in Priority},
            "category": lambda: set(self.categories) or None,
            "sub_category": lambda: self.sub_categories or None,
            "district": lambda: set(directory.places) if directory else None,
            "city": lambda: set(directory.spec.cities) if directory else None,
        }
        getter = domains.get(field_name)
        return getter() if getter else None

    def alias_of(self, field_name: str, value: str) -> str | None:
        """The place code a district / city alias stands for (None: not an alias)."""
        if field_name not in ("district", "city") or self.directory is None:
            return None
        return self.directory.spec.place_aliases.get(value)


# --- entry points ------------------------------------------------------------------------------------------


@dataclass
class CompiledRules:
    """A validated bundle, ready to evaluate. Immutable once built; a new version is a new object."""

    label: str
    bundle: RuleBundle
    manifest: Manifest
    directory: Directory
    taxonomy: dict[str, dict[str, list[str]]]
    calendar: WorkCalendar
    tables: dict[TableName, DecisionTable]
    warnings: list[RuleError]
    _engine: zen.ZenEngine
    _rows_by_id: dict[TableName, dict[str, Row]]

    @property
    def content_hash(self) -> str:
        return self.bundle.content_hash

    def evaluate(self, name: TableName, context: dict[str, Any]) -> tuple[Row | None, dict[str, Any]]:
        """The row of table `name` that fires for this context (first hit) and its outputs; (None, {}) if none."""
        table = self.tables[name]
        inputs = {f: context.get(f) for f in table.input_fields}
        response = self._engine.evaluate(table.file, inputs)
        result: dict[str, Any] = response["result"] or {}
        if not result:
            return None, {}
        row = self._rows_by_id[name].get(str(result.get("rule_id")))
        return row, result


def validate_bundle(bundle: RuleBundle) -> ValidationReport:
    report = ValidationReport()
    _build(bundle, "draft", report)
    return report


def compile_rules(bundle: RuleBundle, label: str | None = None) -> CompiledRules:
    """Validate and compile; raises RulesValidationError naming every problem."""
    report = ValidationReport()
    compiled = _build(bundle, label or f"draft-{bundle.content_hash[:8]}", report)
    if report.errors or compiled is None:
        raise RulesValidationError(report.errors, report.warnings)
    return compiled


def _build(bundle: RuleBundle, label: str, report: ValidationReport) -> CompiledRules | None:
    manifest = _load_manifest(bundle, report)
    if manifest is None:
        return None
    directory = _load_directory(bundle, manifest.directory, report)
    taxonomy = _load_taxonomy(bundle, manifest.taxonomy, report)
    calendar = _load_calendar(bundle, manifest.calendar, report)
    context = _Context(directory, taxonomy)
    tables: dict[TableName, DecisionTable] = {}
    for name in TABLE_NAMES:
        ref = manifest.tables.ref(name)
        table = _load_table(bundle, ref.file, name, context, report)
        if table is None:
            continue
        tables[name] = table
        _check_rows(table, exclusive=ref.exclusive, report=report)
        _check_gaps(name, table, context, report)
    _check_unique_rule_ids(tables.values(), report)
    if (report.errors or directory is None or taxonomy is None or calendar is None
            or len(tables) != len(TABLE_NAMES)):
        return None
    engine = zen.ZenEngine({"loader": {"type": "static", "content": {t.file: t.graph for t in tables.values()}}})
    rows_by_id: dict[TableName, dict[str, Row]] = {
        name: {row.rule_id: row for row in table.rows if row.rule_id} for name, table in tables.items()
    }
    return CompiledRules(label, bundle, manifest, directory, taxonomy, calendar, tables, list(report.warnings),
                         engine, rows_by_id)


# --- files ---------------------------------------------------------------------------------------------------


def _yaml(bundle: RuleBundle, name: str, report: ValidationReport) -> Any:
    text = bundle.files.get(name)
    if text is None:
        report.errors.append(RuleError(name, "file missing from the rule set"))
        return None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader (libyaml's when present)
    except yaml.YAMLError as error:
        report.errors.append(RuleError(name, f"not valid YAML: {error}"))
        return None
    if data is None:  # empty, comment-only or `null`: callers take None as "already reported"
        report.errors.append(RuleError(name, "file is empty"))
    return data


_Parsed = TypeVar("_Parsed")


def _pydantic_errors(name: str, error: ValidationError, report: ValidationReport) -> None:
    for detail in error.errors():
        location = ".".join(str(part) for part in detail["loc"]) or None
        report.errors.append(RuleError(name, detail["msg"], field=location))


def _load_validated(bundle: RuleBundle, name: str, report: ValidationReport,
                    parse: Callable[[Any], _Parsed]) -> _Parsed | None:
    """Read one YAML file of the bundle and parse it; every problem lands in the report, named by file."""
    data = _yaml(bundle, name, report)
    if data is None:
        return None
    try:
        return parse(data)
    except ValidationError as error:
        _pydantic_errors(name, error, report)
        return None


def _load_manifest(bundle: RuleBundle, report: ValidationReport) -> Manifest | None:
    return _load_validated(bundle, MANIFEST_FILE, report, Manifest.model_validate)


def _load_directory(bundle: RuleBundle, name: str, report: ValidationReport) -> Directory | None:
    return _load_validated(bundle, name, report, lambda data: Directory(DirectorySpec.model_validate(data)))


def _load_calendar(bundle: RuleBundle, name: str | None, report: ValidationReport) -> WorkCalendar | None:
    if name is None:
        return WorkCalendar()
    return _load_validated(bundle, name, report, WorkCalendar.model_validate)


def _load_taxonomy(bundle: RuleBundle, name: str, report: ValidationReport) -> dict[str, dict[str, list[str]]] | None:
    data = _yaml(bundle, name, report)
    if data is None:
        return None
    ok = isinstance(data, dict) and all(
        isinstance(level2, dict) and all(isinstance(v, list) for v in level2.values()) for level2 in data.values()
    )
    if not ok:
        report.errors.append(RuleError(name, "expected 一级分类: {二级分类: [三级分类, …]}"))
        return None
    return {str(k): {str(s): [str(x) for x in v] for s, v in level2.items()} for k, level2 in data.items()}


def _load_table(bundle: RuleBundle, file: str, name: TableName, context: _Context,
                report: ValidationReport) -> DecisionTable | None:
    text = bundle.files.get(file)
    if text is None:
        report.errors.append(RuleError(file, f"file of the {name} table missing from the rule set"))
        return None
    try:
        graph = json.loads(text)
    except json.JSONDecodeError as error:
        report.errors.append(RuleError(file, f"not valid JSON: {error.msg} at line {error.lineno} column "
                                             f"{error.colno}"))
        return None
    node = _table_node(file, graph, report)
    if node is None:
        return None
    try:
        zen.ZenEngine().create_decision(text).validate()
    except Exception as error:  # ZEN raises RuntimeError with its own message
        report.errors.append(RuleError(file, f"ZEN rejects the graph: {str(error).splitlines()[0]}"))
        return None
    content = node.get("content") or {}
    errors_before = len(report.errors)
    hit_policy = content.get("hitPolicy")
    if hit_policy != "first":
        report.errors.append(RuleError(file, f"hit policy must be 'first' (found {hit_policy!r})",
                                       field="hitPolicy"))
    _check_node_settings(file, content, report)
    allowed_inputs = INPUT_FIELDS | EXTRA_INPUTS[name]
    inputs = _columns(file, content.get("inputs"), "inputs", report)
    for column in inputs:
        if column.field not in allowed_inputs:
            report.errors.append(RuleError(
                file, f"unknown input field (known: {', '.join(sorted(allowed_inputs))})", field=column.field))
    outputs = _columns(file, content.get("outputs"), "outputs", report)
    spec = OUTPUTS[name]
    for column in outputs:
        if column.field not in spec:
            report.errors.append(RuleError(file, f"not an output of the {name} table (outputs: "
                                                 f"{', '.join(spec)})", field=column.field))
    for out_field, required in spec.items():
        if required and out_field not in {c.field for c in outputs}:
            report.errors.append(RuleError(file, "required output column missing", field=out_field))
    if len(report.errors) > errors_before:
        return None
    raw_rows = content.get("rules")
    if not isinstance(raw_rows, list) or not raw_rows:
        report.errors.append(RuleError(file, "the table has no rows", field="rules"))
        return None
    rows = [_row(file, name, i, raw, inputs, outputs, allowed_inputs, context, report)
            for i, raw in enumerate(raw_rows)]
    return DecisionTable(file, str(node.get("name") or name), "first", inputs, outputs, rows, graph)


# decision-table node settings and what any other value would do to the router's reading of the result
NODE_SETTINGS: dict[str, tuple[object, str]] = {
    "executionMode": ("single", "\"single\": a loop evaluates the table once per item of a list the case "
                                "does not have"),
    "inputField": ("", "empty: the table reads the case itself, not one field of it"),
    "outputPath": ("", "empty: the router reads the outputs at the top of the result, where no row would be found"),
}


def _check_node_settings(file: str, content: dict[str, Any], report: ValidationReport) -> None:
    if content.get("passThrough"):  # ZEN's editor may set it; the router runs the table without it
        content["passThrough"] = False
        report.warnings.append(RuleError(file, "passThrough is ignored: it would copy the whole case, the "
                                               "citizen's text too, into the result and the stored explanation",
                                         field="passThrough"))
    for key, (default, why) in NODE_SETTINGS.items():
        value = content.get(key)
        if value is not None and (type(value) is not type(default) or value != default):
            report.errors.append(RuleError(file, f"must be {why} (found {value!r})", field=key))


def _table_node(file: str, graph: Any, report: ValidationReport) -> dict[str, Any] | None:
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list) or not isinstance(
            graph.get("edges"), list):
        report.errors.append(RuleError(file, "not a JDM graph: expected an object with 'nodes' and 'edges'"))
        return None
    nodes = [n for n in graph["nodes"] if isinstance(n, dict)]
    kinds = [n.get("type") for n in nodes]
    tables = [n for n in nodes if n.get("type") == "decisionTableNode"]
    if len(tables) != 1 or kinds.count("inputNode") != 1 or kinds.count("outputNode") != 1 or len(nodes) != 3:
        report.errors.append(RuleError(
            file, f"expected input -> one decision table -> output, found nodes {kinds}", field="nodes"))
        return None
    by_id = {n.get("id"): n.get("type") for n in nodes}
    edges = [e for e in graph["edges"] if isinstance(e, dict)]
    links = {(by_id.get(e.get("sourceId")), by_id.get(e.get("targetId"))) for e in edges}
    if links != {("inputNode", "decisionTableNode"), ("decisionTableNode", "outputNode")}:
        report.errors.append(RuleError(file, "edges must link input -> decision table -> output", field="edges"))
        return None
    return tables[0]


def _columns(file: str, raw: Any, kind: str, report: ValidationReport) -> list[Column]:
    if not isinstance(raw, list) or not raw:
        report.errors.append(RuleError(file, f"the table has no {kind} columns", field=kind))
        return []
    columns: list[Column] = []
    for i, col in enumerate(raw):
        if not isinstance(col, dict) or not col.get("id") or not isinstance(col.get("field"), str) or not col["field"]:
            report.errors.append(RuleError(file, f"{kind} column #{i + 1} needs an id and a field", field=kind))
            continue
        if col["field"] in {c.field for c in columns}:
            report.errors.append(RuleError(file, f"two {kind} columns read the same field", field=col["field"]))
        columns.append(Column(str(col["id"]), str(col.get("name") or col["field"]), col["field"]))
    return columns


def _filled_cell(file: str, raw: dict[str, Any], column: Column, row: Row, report: ValidationReport) -> str | None:
    """The cell's text, or None when it is empty or (reported) not a string."""
    cell = raw.get(column.id, "")
    if not isinstance(cell, str):
        report.errors.append(RuleError(file, "cell must be a string", row.label, column.field))
        return None
    return cell if cell.strip() else None


def _row(file: str, name: TableName, index: int, raw: Any, inputs: list[Column], outputs: list[Column],
         allowed: dict[str, str], context: _Context, report: ValidationReport) -> Row:
    raw = raw if isinstance(raw, dict) else {}
    row = Row(index, str(raw.get("_id") or ""), str(raw.get("_description") or ""), {}, {})
    # outputs first: the rule id names the row in every later message
    for column in outputs:
        cell = _filled_cell(file, raw, column, row, report)
        if cell is None:
            continue
        try:
            row.outputs[column.field] = output_literal(cell)
        except json.JSONDecodeError:
            report.errors.append(RuleError(
                file, f"output must be a literal (a quoted string, number, true/false or list): {cell!r}",
                row.label, column.field))
        except ValueError as error:  # a literal ZEN reads otherwise: an escape, NaN, 1e400
            report.errors.append(RuleError(file, f"output {cell!r}: {error}", row.label, column.field))
    _check_outputs(file, name, row, context, report)
    for column in inputs:
        cell = _filled_cell(file, raw, column, row, report)
        if cell is not None:
            _read_condition(file, row, column.field, cell, allowed, context, report)
    return row


def _read_condition(file: str, row: Row, field_name: str, cell: str, fields: dict[str, str], context: _Context,
                    report: ValidationReport) -> None:
    """Compile one condition cell, record it on the row and check its literals; `fields` are the table's known
    input fields (field -> kind), which a cell may also read by name."""
    try:
        zen.compile_unary_expression(cell)
    except Exception as error:  # ZEN's lexer / parser error
        report.errors.append(RuleError(file, f"condition {cell!r} does not parse: "
                                             f"{str(error).splitlines()[0]}", row.label, field_name))
        return
    problems = condition_problems(cell, fields)
    for problem in problems:
        report.errors.append(RuleError(file, f"condition {cell!r}: {problem}", row.label, field_name))
    if problems:
        return
    condition = parse_condition(cell)
    row.cells[field_name] = cell
    if not isinstance(condition, AnyValue):
        row.conditions[field_name] = condition
    _check_literals(file, row, field_name, fields[field_name], condition, context, report)


def _check_literals(file: str, row: Row, field_name: str, kind: str, condition: Any, context: _Context,
                    report: ValidationReport) -> None:
    def error(message: str) -> None:
        report.errors.append(RuleError(file, message, row.label, field_name))

    if kind == LIST and isinstance(condition, Values | Interval):
        error(f"{field_name} is a list of terms: test it with contains($, \"…\")")
        return
    if isinstance(condition, Interval):
        if kind != NUMBER:
            error(f"{field_name} is text, not a number: a numeric range never matches")
        elif field_name in NUMBER_RANGES:
            lo, hi = NUMBER_RANGES[field_name]
            if condition.lo > hi or condition.hi < lo:
                error(f"range outside {lo:g}..{hi:g}: the row never matches")
        return
    if not isinstance(condition, Values):
        return
    for item in sorted(condition.items, key=str):
        if kind == NUMBER:
            lo, hi = NUMBER_RANGES.get(field_name, (-math.inf, math.inf))
            if not isinstance(item, float):
                error(f"{field_name} is a number, found {item!r}")
            elif not lo <= item <= hi:
                error(f"{item:g} is outside {lo:g}..{hi:g}")
            continue
        if not isinstance(item, str):
            error(f"{field_name} is text, found {item!r}")
            continue
        alias_of = context.alias_of(field_name, item)
        if alias_of is not None:  # the router hands the tables the directory's code, never the alias
            error(f"{item!r} is the directory's alias of {alias_of!r}, and the tables see {alias_of!r} for both: "
                  f"write \"{alias_of}\"")
            continue
        domain = context.domain(field_name)
        if domain is not None and item not in domain:
            known = ", ".join(sorted(domain)) if len(domain) <= 20 else f"{len(domain)} known values"
            error(f"unknown {field_name} {item!r} ({known})")


def _check_outputs(file: str, name: TableName, row: Row, context: _Context, report: ValidationReport) -> None:
    def error(message: str, field_name: str | None) -> None:
        report.errors.append(RuleError(file, message, row.label, field_name))

    out = row.outputs
    rule_id = out.get("rule_id")
    if rule_id is None:
        error("required output empty: every row needs a rule id", "rule_id")
    elif not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        error(f"rule id must be up to 100 letters, digits, '_', '.', ':' or '-': {rule_id!r}", "rule_id")
    for out_field, required in OUTPUTS[name].items():
        if required and out_field != "rule_id" and out_field not in out:
            error("required output empty", out_field)
    roles = context.directory.roles if context.directory else None
    if name == "department":
        role, reason = out.get("role"), out.get("manual_reason")
        if role is None and reason is None:
            error("required output empty: a row names a department role, or a manual_reason", "role")
        if role is not None and reason is not None:
            error("a row names either a department role or a manual_reason, not both", "manual_reason")
        if role is not None and (not isinstance(role, str) or (roles is not None and role not in roles)):
            error(f"unknown department role {role!r} (roles: {', '.join(roles or [])})", "role")
        if reason is not None and (not isinstance(reason, str) or not reason.strip()):
            error("manual_reason must be a non-empty text", "manual_reason")
        if out.get("scope", "district") not in ("district", "city"):
            error(f"scope must be \"district\" or \"city\", found {out.get('scope')!r}", "scope")
        co = out.get("co_handlers", [])
        if not isinstance(co, list) or not all(isinstance(c, str) for c in co):
            error("co_handlers must be a list of department roles", "co_handlers")
        elif roles is not None:
            for c in co:
                if c not in roles:
                    error(f"unknown department role {c!r} among co_handlers", "co_handlers")
    elif name == "priority" and "priority" in out and out["priority"] not in {p.value for p in Priority}:
        error(f"unknown priority {out['priority']!r} ({', '.join(p.value for p in Priority)})", "priority")
    elif name == "deadline":
        given = [f for f in ("deadline_hours", "deadline_working_days") if f in out]
        if len(given) != 1:
            error("a row gives deadline_hours or deadline_working_days: exactly one of them", "deadline_hours")
        for field_name in given:
            value, top = out[field_name], MAX_WORKING_DAYS if field_name == "deadline_working_days" else None
            if (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or value != int(value)
                    or (top is not None and value > top)):
                limit = f" and at most {top}" if top else ""
                error(f"{field_name} must be a whole number above 0{limit}, found {value!r}", field_name)
    elif name == "direct_answer" and "direct_answer" in out and not isinstance(out["direct_answer"], bool):
        error(f"direct_answer must be true or false, found {out['direct_answer']!r}", "direct_answer")


# --- rows and gaps -------------------------------------------------------------------------------------------


def _check_rows(table: DecisionTable, exclusive: bool, report: ValidationReport) -> None:
    fields = table.input_fields
    for j, later in enumerate(table.rows):
        for earlier in table.rows[:j]:
            if exclusive:
                if all(may_overlap(earlier.condition(f), later.condition(f)) for f in fields):
                    opaque = [f for f in fields if isinstance(later.condition(f), Opaque)
                              or isinstance(earlier.condition(f), Opaque)]
                    detail = f" (cannot prove {', '.join(opaque)} disjoint)" if opaque else ""
                    report.errors.append(RuleError(
                        table.file, f"overlaps row {earlier.label}: the table is exclusive, a case may match "
                                    f"only one row{detail}", later.label))
                    break
            elif all(covers(earlier.condition(f), later.condition(f)) for f in fields):
                same = all(earlier.cells.get(f) == later.cells.get(f) for f in fields)
                what = "has the same conditions as" if same else "is pre-empted by"
                report.errors.append(RuleError(
                    table.file, f"can never fire: it {what} row {earlier.label}, which comes first "
                                f"(hit policy first)", later.label))
                break


def _is_catch_all(row: Row, except_fields: Iterable[str] = ()) -> bool:
    skip = set(except_fields)
    return all(f in skip for f in row.conditions)


def _check_gaps(name: TableName, table: DecisionTable, context: _Context, report: ValidationReport) -> None:
    if name == "department":
        wanted = [("hotline", "category", c) for c in context.categories]
        wanted += [("camera", "kind", k.value) for k in EventKind]
        for source, field_name, value in wanted:
            # rows that name the value (or might), and rows that take every case of the source
            candidates = [r for r in table.rows
                          if matches(r.condition("source"), source) is not False
                          and (not isinstance(r.condition(field_name), AnyValue) or _is_catch_all(r, ["source"]))
                          and matches(r.condition(field_name), value) is not False]
            definite = [r for r in candidates
                        if matches(r.condition("source"), source) and matches(r.condition(field_name), value)]
            what = f"{'taxonomy category' if field_name == 'category' else 'camera event kind'} {value!r}"
            if not candidates:
                report.errors.append(RuleError(table.file, f"gap: {what} has no row", field=field_name))
            elif not definite:
                report.warnings.append(RuleError(
                    table.file, f"{what} is only reached through conditions that cannot be checked", field=field_name))
            elif not any(_is_catch_all(r, ["source", field_name]) for r in definite):
                report.warnings.append(RuleError(
                    table.file, f"{what} has only conditional rows: its other cases go to the manual queue",
                    field=field_name))
    elif name in ("priority", "direct_answer"):
        if not any(_is_catch_all(r) for r in table.rows):
            report.errors.append(RuleError(
                table.file, "gap: no catch-all row (all conditions empty) at the end: some cases would get no "
                            f"{'priority' if name == 'priority' else 'direct-answer verdict'}"))
    elif name == "deadline":
        for source in Source:
            for priority in Priority:
                if not any(matches(r.condition("source"), source.value) and matches(r.condition("priority"),
                           priority.value) and _is_catch_all(r, ["source", "priority"]) for r in table.rows):
                    report.errors.append(RuleError(
                        table.file, f"gap: no deadline for {source.value} cases of priority {priority.value}",
                        field="priority"))


def _check_unique_rule_ids(tables: Iterable[DecisionTable], report: ValidationReport) -> None:
    seen: dict[str, str] = {}
    for table in tables:
        for row in table.rows:
            if row.rule_id is None:
                continue
            if row.rule_id in seen:
                report.errors.append(RuleError(table.file, f"rule id also used in {seen[row.rule_id]}", row.label,
                                               "rule_id"))
            else:
                seen[row.rule_id] = f"{table.file} {row.label}"


__all__ = [
    "CompiledRules",
    "RuleError",
    "RulesValidationError",
    "ValidationReport",
    "compile_rules",
    "validate_bundle",
]
