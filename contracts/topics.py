"""Topic names and the one message model each carries."""

from enum import StrEnum

from contracts.messages import (
    AgentAssist,
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
    AGENT_ASSIST = "hotline.assist"
    CAMERA_EVENTS = "camera.events"
    DISPATCH_DECISIONS = "dispatch.decisions"
    TICKETS = "tickets.events"
    DEAD_LETTER = "deadletter"


TOPIC_MODELS: dict[Topic, type[Message]] = {
    Topic.TRANSCRIPTS: HotlineTranscript,
    Topic.FRAMES: CameraFrame,
    Topic.CLASSIFIED_CALLS: ClassifiedCall,
    Topic.AGENT_ASSIST: AgentAssist,
    Topic.CAMERA_EVENTS: DetectedEvent,
    Topic.DISPATCH_DECISIONS: DispatchDecision,
    Topic.TICKETS: TicketEvent,
    Topic.DEAD_LETTER: DeadLetter,
}
