from datetime import UTC, datetime

from contracts import CategoryScore, ClassifiedCall, Channel, DetectedEvent, EventKind, Priority, Urgency
from dispatch_rules import BaselineRouter, RoutingTable

ROUTER = BaselineRouter(RoutingTable.load())


def _call(category: str | None, urgency: Urgency = Urgency.NONE, district: str | None = "A3区") -> ClassifiedCall:
    return ClassifiedCall(
        call_id="c1", received_at=datetime.now(UTC), channel=Channel.PHONE, text="...", category=category,
        confidence=0.9 if category else 0.3, top_k=[CategoryScore(label="城乡建设", score=0.9)],
        classifier="test", district=district, urgency=urgency,
    )


def test_category_routes_to_the_district_body_with_an_explanation() -> None:
    decision = ROUTER.route_call(_call("城乡建设"))
    assert decision.department == "A3区住房和城乡建设局"
    assert decision.rule_id == "hotline.城乡建设" and decision.source_event_id == "call:c1"
    assert decision.explanation["inputs"]["category"] == "城乡建设"
    assert decision.priority == Priority.NORMAL and decision.deadline_hours == 72


def test_emergency_raises_priority_and_shortens_the_deadline() -> None:
    decision = ROUTER.route_call(_call("城乡建设", Urgency.EMERGENCY, district=None))
    assert decision.priority == Priority.URGENT and decision.deadline_hours == 2
    assert decision.department == "市住房和城乡建设局"


def test_abstained_or_unknown_category_goes_to_manual_dispatch() -> None:
    abstained = ROUTER.route_call(_call(None))
    assert abstained.department is None and abstained.rule_id is None
    assert "confidence" in (abstained.manual_reason or "")
    unknown = ROUTER.route_call(_call("外星人"))
    assert unknown.department is None and "外星人" in (unknown.manual_reason or "")


def test_camera_event_routes_by_kind() -> None:
    event = DetectedEvent(
        event_id="e1", camera_id="cam-A3-0001", kind=EventKind.FIRE_SMOKE, state="started",
        started_at=datetime.now(UTC), observed_at=datetime.now(UTC), confidence=0.8, district="A3区",
        citymgmt_code="200411", detector="test",
    )
    decision = ROUTER.route_event(event)
    assert decision.department == "市消防救援支队" and decision.priority == Priority.URGENT
    assert decision.co_handlers == ["市应急管理局"]
