"""The dispatch stage: classified calls and camera events in, dispatch decisions out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contracts import ClassifiedCall, DetectedEvent, DispatchDecision, Message, Topic
from streams.stage import Output, Stage


class Router(Protocol):
    def route_call(self, call: ClassifiedCall) -> DispatchDecision: ...
    def route_event(self, event: DetectedEvent) -> DispatchDecision: ...


def make_dispatch_stages(router: Router) -> list[Stage]:
    def handle_call(message: Message) -> Sequence[Output]:
        assert isinstance(message, ClassifiedCall)
        return [Output(Topic.DISPATCH_DECISIONS, router.route_call(message))]

    def handle_event(message: Message) -> Sequence[Output]:
        assert isinstance(message, DetectedEvent)
        if message.state != "started":
            return []  # an event that ends closes nothing by itself; its ticket follows the lifecycle
        return [Output(Topic.DISPATCH_DECISIONS, router.route_event(message))]

    return [
        Stage(name="dispatch-calls", input_topic=Topic.CLASSIFIED_CALLS, handle=handle_call),
        Stage(name="dispatch-camera-events", input_topic=Topic.CAMERA_EVENTS, handle=handle_event),
    ]
