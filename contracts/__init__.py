"""Typed contracts between the pipeline's stages: every message on every topic is one of these models."""

from contracts.messages import (
    CITYMGMT_EVENT_CODES,
    AgentAssist,
    CameraFrame,
    CategoryScore,
    Channel,
    ClassifiedCall,
    DeadLetter,
    DetectedEvent,
    DispatchDecision,
    EventKind,
    HotlineTranscript,
    Message,
    Priority,
    SimilarTicket,
    Source,
    SuggestedAnswer,
    TicketEvent,
    Urgency,
)
from contracts.privacy import mask_phone, mask_pii
from contracts.topics import TOPIC_MODELS, Topic

__all__ = [
    "CITYMGMT_EVENT_CODES",
    "TOPIC_MODELS",
    "AgentAssist",
    "CameraFrame",
    "CategoryScore",
    "Channel",
    "ClassifiedCall",
    "DeadLetter",
    "DetectedEvent",
    "DispatchDecision",
    "EventKind",
    "HotlineTranscript",
    "Message",
    "Priority",
    "SimilarTicket",
    "Source",
    "SuggestedAnswer",
    "TicketEvent",
    "Topic",
    "Urgency",
    "mask_phone",
    "mask_pii",
]
