"""The decision-table router: classified calls and camera events -> dispatch decisions, by the active rule set.

Per case: the confidence gate (manifest thresholds), then the department table (first hit) and the directory
(role + place -> body), the priority table, the deadline table (by source and priority) and the direct-answer
table. Every decision carries its explanation: the rule set version, the inputs the tables saw and, for each
table, the row that fired and the conditions it matched. No row, low confidence, an unknown place or a body
missing from the directory sends the case to the manual dispatch queue with the reason.

The router asks a `RulesSource` for the rules on every case: `StaticRules` always answers the same compiled
set (tests, backtests, benchmarks); `PublishedRules` serves the version active in the ticket database and
checks, at most every `refresh_seconds`, whether another one was published or rolled back to.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from contracts import ClassifiedCall, DetectedEvent, DispatchDecision, Priority, Source
from dispatch_rules.bundle import DEFAULT_TABLES_DIR, TableName, load_bundle
from dispatch_rules.compiler import CompiledRules, RulesValidationError, compile_rules
from dispatch_rules.directory import ResolutionError
from dispatch_rules.jdm import Row, referenced_fields
from dispatch_rules.versions import RuleStoreError

log = structlog.get_logger(__name__)

ROUTER_NAME = "decision tables (GoRules ZEN JDM)"


class RuleInputs(BaseModel):
    """What the tables see of a case (the text is not stored in the explanation: the ticket has it)."""

    model_config = ConfigDict(extra="ignore")
    source: Literal["hotline", "camera"]
    channel: str | None = None
    category: str | None = None
    sub_category: str | None = None
    kind: str | None = None
    citymgmt_code: str | None = None
    district: str | None = None
    urgency: str = "none"
    urgency_terms: list[str] = Field(default_factory=list)
    confidence: float = 0.0
    hour: int | None = None
    weekday: int | None = None
    text: str = ""

    def context(self, city: str | None, district: str | None) -> dict[str, Any]:
        """What the tables read: `district` as the directory's code (C3区 and C3县 are one place to a row)."""
        return self.model_dump() | {"city": city, "district": district}

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude={"text"}) | {"text_chars": len(self.text)}


class Outcome(BaseModel):
    """A routing verdict, before it is dressed as a DispatchDecision (backtests compare these)."""

    department: str | None
    department_id: str | None = None
    co_handlers: list[str] = Field(default_factory=list)
    priority: Priority
    deadline_hours: int  # for a deadline in working days: 24 per day, the nominal figure backtests compare
    deadline_working_days: int | None = None
    direct_answer_allowed: bool = False
    rule_id: str | None
    manual_reason: str | None = None
    rules_version: str
    explanation: dict[str, Any]

    @property
    def deadline_label(self) -> str:
        if self.deadline_working_days:
            return f"{self.deadline_working_days} 个工作日 working days"
        return f"{self.deadline_hours} h"


class RulesSource(Protocol):
    def current(self) -> CompiledRules: ...


class StaticRules:
    def __init__(self, rules: CompiledRules) -> None:
        self.rules = rules

    def current(self) -> CompiledRules:
        return self.rules


def local_time(moment: datetime, timezone: str) -> datetime:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone))


def call_inputs(call: ClassifiedCall, timezone: str) -> RuleInputs:
    local = local_time(call.received_at, timezone)
    title = (call.title or "").strip()
    text = call.text if not title or call.text.startswith(title) else f"{title}。{call.text}"
    return RuleInputs(
        source="hotline", channel=call.channel.value, category=call.category,
        sub_category=call.sub_categories[0].label if call.sub_categories else None, district=call.district,
        urgency=call.urgency.value, urgency_terms=list(call.urgency_terms), confidence=round(call.confidence, 4),
        hour=local.hour, weekday=local.isoweekday(), text=text,
    )


def event_inputs(event: DetectedEvent, timezone: str) -> RuleInputs:
    local = local_time(event.started_at, timezone)
    return RuleInputs(
        source="camera", kind=event.kind.value, citymgmt_code=event.citymgmt_code, district=event.district,
        confidence=round(event.confidence, 4), hour=local.hour, weekday=local.isoweekday(),
    )


def _step(rules: CompiledRules, table: TableName, row: Row | None, result: dict[str, Any]) -> dict[str, Any]:
    source = rules.tables[table]
    step: dict[str, Any] = {"table": table, "file": source.file}
    if row is None:
        step["rule_id"] = None
        step["matched"] = "no row"
        return step
    step.update(rule_id=row.rule_id, row=row.index + 1, description=row.description, conditions=dict(row.cells),
                output={k: v for k, v in result.items() if k != "rule_id"})
    return step


class _Trace:
    """The tables run on one case: each step explained; an engine failure is noted and the case goes on."""

    def __init__(self, rules: CompiledRules) -> None:
        self.rules = rules
        self.steps: list[dict[str, Any]] = []
        self.failed: list[str] = []

    def run(self, table: TableName, context: dict[str, Any]) -> tuple[Row | None, dict[str, Any]]:
        try:
            row, result = self.rules.evaluate(table, context)
        except Exception as error:  # the engine failed on this case: keep going, say so
            first_line = str(error).splitlines()[0]
            self.failed.append(f"{table} table failed: {first_line}")
            self.steps.append({"table": table, "file": self.rules.tables[table].file, "error": first_line})
            return None, {}
        self.steps.append(_step(self.rules, table, row, result))
        return row, result


class _Route(BaseModel):
    """What the department table and the directory made of a case."""

    department: str | None = None
    department_id: str | None = None
    co_handlers: list[str] = Field(default_factory=list)
    rule_id: str | None = None
    manual_reason: str | None = None
    resolved: dict[str, Any] | None = None


def decide(rules: CompiledRules, inputs: RuleInputs, classifier_abstained: bool = False) -> Outcome:
    """Run the tables on one case. Never raises for a case: problems become manual-queue reasons."""
    place = rules.directory.place(inputs.district)
    city, district = (place.city, place.code) if place else (None, inputs.district)
    context = inputs.context(city, district)
    trace = _Trace(rules)
    threshold, manual_reason = _confidence_gate(rules, inputs, classifier_abstained)
    explanation: dict[str, Any] = {"router": ROUTER_NAME, "rules_version": rules.label, "inputs": inputs.stored(),
                                   "city": city, "steps": trace.steps, "min_confidence": threshold}
    if district != inputs.district:
        explanation["district_read_as"] = district
    if manual_reason and _emergency_row_ignores_category(rules, inputs, context):
        # a gas leak cannot wait in the manual queue because the category is unsure: its row never asks for one
        explanation["confidence_gate_bypassed"] = manual_reason
        manual_reason = None
    route = _Route() if manual_reason else _route_department(rules, inputs, context, trace)
    if route.resolved is not None:
        explanation["department"] = route.resolved
    manual_reason = manual_reason or route.manual_reason
    priority, hours, working_days = _priority_and_deadline(trace, context)
    direct = False
    if manual_reason is None and route.department is not None:
        row, result = trace.run("direct_answer", context | {"priority": priority.value if priority else None})
        direct = bool(result.get("direct_answer")) if row is not None else False
    if priority is None or hours is None:
        fallback = rules.manifest.fallback
        explanation["fallback"] = {"priority": fallback.priority.value, "deadline_hours": fallback.deadline_hours}
        trace.failed.append("no priority/deadline row fired: fallback from the manifest")
        priority, hours, working_days = priority or fallback.priority, hours or fallback.deadline_hours, None
    if trace.failed:
        manual_reason = "; ".join([*([manual_reason] if manual_reason else []), *trace.failed])
    if manual_reason:
        explanation["manual_reason"] = manual_reason
    routed = not manual_reason
    return Outcome(
        department=route.department if routed else None,
        department_id=route.department_id if routed else None,
        co_handlers=route.co_handlers if routed else [],
        priority=priority, deadline_hours=hours, deadline_working_days=working_days,
        direct_answer_allowed=direct and routed,
        rule_id=route.rule_id, manual_reason=manual_reason, rules_version=rules.label, explanation=explanation,
    )


def _confidence_gate(rules: CompiledRules, inputs: RuleInputs, classifier_abstained: bool) -> tuple[float, str | None]:
    """The manifest's threshold for the case's source, and why the case cannot be routed on confidence, if so."""
    threshold = (rules.manifest.min_confidence.hotline if inputs.source == "hotline"
                 else rules.manifest.min_confidence.camera)
    if inputs.source == "hotline" and (classifier_abstained or inputs.category is None):
        return threshold, f"classifier abstained (confidence {inputs.confidence:.2f}): no category to route on"
    if inputs.confidence < threshold:
        model = "classifier" if inputs.source == "hotline" else "detector"
        return threshold, f"{model} confidence {inputs.confidence:.2f} below the rules' threshold {threshold:.2f}"
    return threshold, None


_CLASSIFIER_FIELDS = {"category", "sub_category", "confidence"}


def _emergency_row_ignores_category(rules: CompiledRules, inputs: RuleInputs, context: dict[str, Any]) -> bool:
    """An emergency call whose department row tests nothing the classifier decides."""
    if inputs.source != "hotline" or inputs.urgency != "emergency":
        return False
    try:
        row, result = rules.evaluate("department", context)
    except Exception:  # the engine's failure is traced when the table runs for real
        return False
    return row is not None and not result.get("manual_reason") and not _CLASSIFIER_FIELDS & _fields_read(row)


def _fields_read(row: Row) -> set[str]:
    """The fields a row tests: its filled columns, and any its cells name (`$ == "emergency" and confidence > 0.5`)."""
    return set(row.conditions).union(*(referenced_fields(cell) for cell in row.cells.values()))


def _route_department(rules: CompiledRules, inputs: RuleInputs, context: dict[str, Any], trace: _Trace) -> _Route:
    """The department table's first hit, resolved to a body (and co-handlers) of the directory."""
    row, result = trace.run("department", context)
    if row is None:
        if trace.failed:
            return _Route()
        return _Route(manual_reason=f"no department rule matched (source={inputs.source}, "
                                    f"category={inputs.category}, kind={inputs.kind}, district={inputs.district})")
    if result.get("manual_reason"):
        return _Route(rule_id=row.rule_id, manual_reason=f"rule {row.rule_id}: {result['manual_reason']}")
    scope: Literal["district", "city"] = "city" if result.get("scope") == "city" else "district"
    try:
        resolution = rules.directory.resolve(str(result["role"]), inputs.district, scope)
        handlers = [rules.directory.resolve(role, resolution.department.place, scope).department
                    for role in result.get("co_handlers") or []]
    except ResolutionError as error:
        reason = f"rule {row.rule_id} names role {result['role']!r}, but {error}"
        return _Route(rule_id=row.rule_id, manual_reason=reason)
    department = resolution.department
    return _Route(
        department=department.name, department_id=department.id, rule_id=row.rule_id,
        co_handlers=[h.name for h in handlers if h.name != department.name],
        resolved={"id": department.id, "role": result["role"], "place": department.place,
                  "resolved": resolution.how, "co_handlers": [h.id for h in handlers]},
    )


def _priority_and_deadline(trace: _Trace, context: dict[str, Any]) -> tuple[Priority | None, int | None, int | None]:
    """The priority table, then the deadline table for that priority: (priority, hours, working days)."""
    row, result = trace.run("priority", context)
    if row is None:
        return None, None, None
    priority = Priority(result["priority"])
    row, result = trace.run("deadline", context | {"priority": priority.value})
    if row is not None and result.get("deadline_working_days") is not None:
        working_days = int(result["deadline_working_days"])
        return priority, 24 * working_days, working_days
    if row is not None and result.get("deadline_hours") is not None:
        return priority, int(result["deadline_hours"]), None
    return priority, None, None


def working_day_deadline(rules: CompiledRules, decided_at: datetime, working_days: int,
                         explanation: dict[str, Any]) -> tuple[datetime, int]:
    """The due time `working_days` 工作日 after `decided_at` on the rules' calendar (local time), and the whole
    hours until then; the explanation records the calendar used."""
    local = decided_at.astimezone(ZoneInfo(rules.manifest.timezone))
    due = rules.calendar.add_working_days(local, working_days)
    covered = rules.calendar.covers_year(local.year) and rules.calendar.covers_year(due.year)
    explanation["deadline"] = {
        "working_days": working_days, "due_local": due.isoformat(),
        "calendar": rules.manifest.calendar or "weekends only",
        **({} if covered else {"warning": f"the calendar does not cover {due.year}: weekends only"}),
    }
    return due.astimezone(UTC), math.ceil((due - decided_at).total_seconds() / 3600)


class DecisionTableRouter:
    """route_call / route_event -> DispatchDecision, per the decision tables of the active version."""

    def __init__(self, rules: RulesSource | CompiledRules) -> None:
        self.rules: RulesSource = StaticRules(rules) if isinstance(rules, CompiledRules) else rules

    @classmethod
    def published(cls, engine: Engine, refresh_seconds: float = 5.0) -> DecisionTableRouter:
        """The production router: the version active in the (already migrated) ticket database behind `engine`."""
        from dispatch_rules.versions import RuleStore

        return cls(PublishedRules(RuleStore(engine), refresh_seconds))

    def route_call(self, call: ClassifiedCall) -> DispatchDecision:
        rules = self.rules.current()
        inputs = call_inputs(call, rules.manifest.timezone)
        outcome = decide(rules, inputs, classifier_abstained=call.category is None)
        outcome.explanation["classifier"] = call.classifier
        return self._decision(rules, outcome, Source.HOTLINE, f"call:{call.call_id}", call.title or call.text[:40],
                              call.text, call.category, call.district, call.address)

    def route_event(self, event: DetectedEvent) -> DispatchDecision:
        rules = self.rules.current()
        outcome = decide(rules, event_inputs(event, rules.manifest.timezone))
        outcome.explanation.update(camera_id=event.camera_id, zone_id=event.zone_id, detector=event.detector)
        decision = self._decision(
            rules, outcome, Source.CAMERA, f"camera-event:{event.event_id}", f"{event.kind.value} @ {event.camera_id}",
            f"{event.kind.value} seen by camera {event.camera_id} since {event.started_at.isoformat()}",
            event.citymgmt_code or event.kind.value, event.district, event.address,
        )
        return decision.model_copy(update={"snapshot_jpeg": event.snapshot_jpeg})

    @staticmethod
    def _decision(rules: CompiledRules, outcome: Outcome, source: Source, source_event_id: str, title: str,
                  description: str, category: str | None, district: str | None,
                  address: str | None) -> DispatchDecision:
        decided_at = datetime.now(UTC)
        hours, deadline_at = outcome.deadline_hours, None
        if outcome.deadline_working_days:
            deadline_at, hours = working_day_deadline(rules, decided_at, outcome.deadline_working_days,
                                                      outcome.explanation)
        return DispatchDecision(
            decision_id=hashlib.sha1(f"{source_event_id}|{outcome.rules_version}".encode()).hexdigest()[:20],
            source=source, source_event_id=source_event_id, decided_at=decided_at, title=title,
            description=description, category=category, district=district, address=address,
            department=outcome.department, co_handlers=outcome.co_handlers, priority=outcome.priority,
            deadline_hours=hours, deadline_working_days=outcome.deadline_working_days, deadline_at=deadline_at,
            direct_answer_allowed=outcome.direct_answer_allowed,
            rule_id=outcome.rule_id, rules_version=outcome.rules_version, manual_reason=outcome.manual_reason,
            explanation=outcome.explanation,
        )


class PublishedRules:
    """The version active in the rule store, re-checked at most every `refresh_seconds` (one cheap query).

    The first use publishes the shipped default rules as version 1 when the store has none. A version that
    fails to compile is logged and skipped: the router keeps serving the one it has, or, when it has none yet
    (start-up), the version a rollback would return to, else the shipped rules. A version that could not be
    read (the database failed) is tried again at the next check.
    """

    def __init__(self, store: RuleStoreLike, refresh_seconds: float = 5.0, *,
                 default_dir: Path = DEFAULT_TABLES_DIR, clock: Callable[[], float] = time.monotonic,
                 cache_size: int = 4) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.default_dir = default_dir
        self.clock = clock
        self._cache: OrderedDict[int, CompiledRules] = OrderedDict()
        self._cache_size = cache_size
        self._rules: CompiledRules | None = None
        self._version_id: int | None = None
        self._checked_at = -float("inf")
        self._lock = threading.Lock()

    @property
    def version_id(self) -> int | None:
        return self._version_id

    def current(self) -> CompiledRules:
        if self._rules is not None and self.clock() - self._checked_at < self.refresh_seconds:
            return self._rules
        with self._lock:
            if self._rules is None or self.clock() - self._checked_at >= self.refresh_seconds:
                self._refresh()
        assert self._rules is not None
        return self._rules

    def refresh(self) -> CompiledRules:
        """Check now, whatever the interval."""
        with self._lock:
            self._refresh()
        assert self._rules is not None
        return self._rules

    def _refresh(self) -> None:
        self._checked_at = self.clock()
        try:
            active = self.store.active_version_id()
            if active is None:
                self.store.ensure_default(self.default_dir)
                active = self.store.active_version_id()
        except SQLAlchemyError as error:
            if self._rules is None:
                raise
            log.warning("rules_check_failed", error=str(error).splitlines()[0], serving=self._rules.label)
            return
        if active is None or active == self._version_id:
            return
        try:
            rules = self._cache.get(active) or self.store.compiled(active)
        except (SQLAlchemyError, RuleStoreError) as error:  # not the version's fault: read it again next time
            if self._rules is None:
                raise
            log.warning("rules_version_unreadable", version=active, error=str(error).splitlines()[0],
                        serving=self._rules.label, retry_in_s=self.refresh_seconds)
            return
        except (RulesValidationError, KeyError) as error:
            serving = self._rules or self._fallback(active)
            log.error("rules_version_rejected", version=active, error=str(error), serving=serving.label)
            self._rules = serving
            self._version_id = active  # do not retry every interval; a new activation changes the id
            return
        self._use(active, rules)

    def _fallback(self, rejected: int) -> CompiledRules:
        """Rules to start with when the active version does not compile (e.g. checks added since it was
        published): the versions a rollback would return to, nearest first, else the shipped rules."""
        for version_id in self.store.previous_versions():
            if version_id == rejected:
                continue
            try:
                return self._cache.get(version_id) or self.store.compiled(version_id)
            except (RulesValidationError, KeyError):
                continue
        bundle = load_bundle(self.default_dir)
        return compile_rules(bundle, f"shipped-{bundle.content_hash[:8]}")

    def _use(self, active: int, rules: CompiledRules) -> None:
        self._cache[active] = rules
        self._cache.move_to_end(active)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        previous = self._rules.label if self._rules else None
        self._rules, self._version_id = rules, active
        log.info("rules_version_active", version=rules.label, previous=previous)


class RuleStoreLike(Protocol):
    def active_version_id(self) -> int | None: ...
    def ensure_default(self, folder: Path) -> object: ...
    def compiled(self, version_id: int) -> CompiledRules: ...
    def previous_versions(self) -> list[int]: ...
