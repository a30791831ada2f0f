"""The baseline router: a category / event-kind -> department table (baseline_routing.yaml).

Low classifier confidence or an unmapped category sends the case to the manual dispatch queue with the
reason; it never falls back to a silent default department.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

from contracts import ClassifiedCall, DetectedEvent, DispatchDecision, EventKind, Priority, Source, Urgency

DEFAULT_TABLE = Path(__file__).with_name("baseline_routing.yaml")


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: str
    scope: Literal["district", "city"] = "district"
    citymgmt_code: str | None = None
    co_handlers: list[str] = []


class RoutingTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    hotline: dict[str, Route]
    camera: dict[EventKind, Route]
    priority_by_urgency: dict[Urgency, Priority]
    deadline_hours: dict[Priority, int]
    camera_priority: dict[EventKind, Priority] = {}

    @classmethod
    def load(cls, path: Path = DEFAULT_TABLE) -> RoutingTable:
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def department_name(route: Route, district: str | None) -> str:
    if route.scope == "district" and district:
        return f"{district}{route.department}"
    return f"市{route.department}"


class BaselineRouter:
    def __init__(self, table: RoutingTable) -> None:
        self.table = table

    def route_call(self, call: ClassifiedCall) -> DispatchDecision:
        priority = self.table.priority_by_urgency[call.urgency]
        inputs: dict[str, Any] = {
            "source": "hotline", "category": call.category, "confidence": round(call.confidence, 4),
            "district": call.district, "urgency": call.urgency.value, "urgency_terms": call.urgency_terms,
            "classifier": call.classifier,
        }
        route = self.table.hotline.get(call.category) if call.category else None
        manual_reason = None
        if call.category is None:
            manual_reason = f"classifier confidence {call.confidence:.2f} below threshold"
        elif route is None:
            manual_reason = f"no route for category {call.category!r}"
        return self._decision(
            source=Source.HOTLINE,
            source_event_id=f"call:{call.call_id}",
            title=call.title or call.text[:40],
            description=call.text,
            category=call.category,
            district=call.district,
            address=call.address,
            route=route,
            rule_id=f"hotline.{call.category}" if route else None,
            priority=priority,
            manual_reason=manual_reason,
            inputs=inputs,
        )

    def route_event(self, event: DetectedEvent) -> DispatchDecision:
        route = self.table.camera.get(event.kind)
        priority = self.table.camera_priority.get(event.kind, Priority.NORMAL)
        inputs: dict[str, Any] = {
            "source": "camera", "kind": event.kind.value, "camera_id": event.camera_id, "zone_id": event.zone_id,
            "confidence": round(event.confidence, 4), "district": event.district,
            "citymgmt_code": event.citymgmt_code, "detector": event.detector,
        }
        return self._decision(
            source=Source.CAMERA,
            source_event_id=f"camera-event:{event.event_id}",
            title=f"{event.kind.value} @ {event.camera_id}",
            description=f"{event.kind.value} seen by camera {event.camera_id} since {event.started_at.isoformat()}",
            category=event.citymgmt_code or event.kind.value,
            district=event.district,
            address=event.address,
            route=route,
            rule_id=f"camera.{event.kind.value}" if route else None,
            priority=priority,
            manual_reason=None if route else f"no route for event kind {event.kind.value!r}",
            inputs=inputs,
        )

    def _decision(self, *, source: Source, source_event_id: str, title: str, description: str,
                  category: str | None, district: str | None, address: str | None, route: Route | None,
                  rule_id: str | None, priority: Priority, manual_reason: str | None,
                  inputs: dict[str, Any]) -> DispatchDecision:
        return DispatchDecision(
            decision_id=hashlib.sha1(f"{source_event_id}|{self.table.version}".encode()).hexdigest()[:20],
            source=source,
            source_event_id=source_event_id,
            decided_at=datetime.now(UTC),
            title=title,
            description=description,
            category=category,
            district=district,
            address=address,
            department=department_name(route, district) if route and not manual_reason else None,
            co_handlers=[f"市{c}" for c in route.co_handlers] if route and not manual_reason else [],
            priority=priority,
            deadline_hours=self.table.deadline_hours[priority],
            rule_id=rule_id if not manual_reason else None,
            rules_version=self.table.version,
            manual_reason=manual_reason,
            explanation={"inputs": inputs, "router": "baseline category table"},
        )
