"""Topic names and the one message model each carries."""

from enum import StrEnum

from contracts.messages import (
    CameraFrame,
    ClassifiedCall,
    DeadLetter,
    DetectedEvent,
    DispatchDecision,
    HotlineTranscript,
    Message,
    TicketEvent,
)


class Topic(StrEnum):
    TRANSCRIPTS = "hotline.transcripts"
    FRAMES = "camera.frames"
    CLASSIFIED_CALLS = "hotline.classified"
    CAMERA_EVENTS = "camera.events"
    DISPATCH_DECISIONS = "dispatch.decisions"
    TICKETS = "tickets.events"
    DEAD_LETTER = "deadletter"


TOPIC_MODELS: dict[Topic, type[Message]] = {
    Topic.TRANSCRIPTS: HotlineTranscript,
    Topic.FRAMES: CameraFrame,
    Topic.CLASSIFIED_CALLS: ClassifiedCall,
    Topic.CAMERA_EVENTS: DetectedEvent,
    Topic.DISPATCH_DECISIONS: DispatchDecision,
    Topic.TICKETS: TicketEvent,
    Topic.DEAD_LETTER: DeadLetter,
}
