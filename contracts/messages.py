"""The messages carried on topics. Each carries a `schema_id` naming its schema and version.

A consumer rejects (to the dead-letter topic) any message whose schema_id is not the one its topic carries,
so a producer on a newer schema is noticed instead of being half-read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Base64Bytes, BaseModel, ConfigDict, Field, field_validator

from contracts.privacy import mask_phone, mask_pii

# The city's time zone: a time written without a zone is the city's, and ticket numbers carry the city's date.
CITY_TZ = ZoneInfo("Asia/Shanghai")


def city_time(moment: datetime) -> datetime:
    """A time someone wrote, in UTC: without a zone it is the city's, as a citizen or a clerk of the city writes it."""
    return (moment.replace(tzinfo=CITY_TZ) if moment.tzinfo is None else moment).astimezone(UTC)

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Message(BaseModel):
    """Base of every topic message."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SCHEMA: ClassVar[str]

    def key(self) -> str | None:
        """Partitioning key on the topic (district, camera ...); None lets the transport choose."""
        return None


class Channel(StrEnum):
    PHONE = "phone"
    WEB = "web"
    APP = "app"
    WECHAT = "wechat"
    SMS = "sms"
    EMAIL = "email"
    OTHER = "other"


class Source(StrEnum):
    HOTLINE = "hotline"
    CAMERA = "camera"


class Priority(StrEnum):
    """12345 practice: emergencies within hours, ordinary requests within working days."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Urgency(StrEnum):
    NONE = "none"
    ELEVATED = "elevated"
    EMERGENCY = "emergency"


class EventKind(StrEnum):
    """Urban-management events a camera can report (数字化城管 事件)."""

    EXPOSED_GARBAGE = "exposed_garbage"
    OVERFLOWING_BIN = "overflowing_bin"
    ILLEGAL_PARKING = "illegal_parking"
    ROAD_DAMAGE = "road_damage"
    STREET_VENDOR = "street_vendor"
    FIRE_SMOKE = "fire_smoke"
    FLOODING = "flooding"


# Each kind's 数字化城管 event code (GB/T 30428.2 / CJ/T 214 style), used for routing and Open311 services.
CITYMGMT_EVENT_CODES: dict[EventKind, str] = {
    EventKind.EXPOSED_GARBAGE: "200102",  # 暴露垃圾
    EventKind.OVERFLOWING_BIN: "200102",  # 暴露垃圾 (垃圾满溢)
    EventKind.ILLEGAL_PARKING: "200505",  # 机动车乱停放
    EventKind.ROAD_DAMAGE: "200306",  # 道路破损
    EventKind.STREET_VENDOR: "200501",  # 无照经营游商
    EventKind.FIRE_SMOKE: "200411",  # 火灾
    EventKind.FLOODING: "200111",  # 道路积水
}


class HotlineTranscript(Message):
    """A citizen's call (or web/app message) as the call centre received it."""

    SCHEMA: ClassVar[str] = "hotline.transcript/v1"
    schema_id: Literal["hotline.transcript/v1"] = "hotline.transcript/v1"
    call_id: Identifier
    received_at: AwareDatetime
    channel: Channel = Channel.PHONE
    title: Annotated[str, Field(max_length=500)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=20_000)]
    caller_phone: Annotated[str, Field(max_length=32)] | None = None
    district_hint: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("caller_phone")
    @classmethod
    def _mask_caller_phone(cls, phone: str | None) -> str | None:
        return None if phone is None else mask_phone(phone)

    @field_validator("text", "title")
    @classmethod
    def _mask_numbers_in_text(cls, text: str | None) -> str | None:
        return None if text is None else mask_pii(text)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text

    def key(self) -> str | None:
        return self.district_hint or self.call_id


class CameraFrame(Message):
    """One still from a city camera; `image` is JPEG or PNG bytes (base64 in JSON)."""

    SCHEMA: ClassVar[str] = "camera.frame/v1"
    schema_id: Literal["camera.frame/v1"] = "camera.frame/v1"
    frame_id: Identifier
    camera_id: Identifier
    captured_at: AwareDatetime
    content_type: Literal["image/jpeg", "image/png"] = "image/jpeg"
    image: Base64Bytes

    def key(self) -> str | None:
        return self.camera_id


class CategoryScore(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    score: Probability


class ClassifiedCall(Message):
    """A transcript with what the text stage understood of it."""

    SCHEMA: ClassVar[str] = "hotline.classified/v1"
    schema_id: Literal["hotline.classified/v1"] = "hotline.classified/v1"
    call_id: Identifier
    received_at: AwareDatetime
    channel: Channel
    title: str | None = None
    text: str
    category: str | None = Field(description="Top-level category; None when the classifier abstained.")
    confidence: Probability
    top_k: list[CategoryScore]
    sub_categories: list[CategoryScore] = Field(default_factory=list)
    classifier: str = Field(description="Which model produced the category, with its version.")
    district: str | None = None
    address: str | None = None
    urgency: Urgency = Urgency.NONE
    urgency_terms: list[str] = Field(default_factory=list)
    embedding: list[float] | None = Field(
        default=None, description="Sentence embedding (L2-normalised) from `classifier`, for similarity downstream."
    )

    @field_validator("text", "title")
    @classmethod
    def _mask_numbers_in_text(cls, text: str | None) -> str | None:
        return None if text is None else mask_pii(text)

    def key(self) -> str | None:
        return self.district or self.call_id


class SuggestedAnswer(BaseModel):
    """A past case from the knowledge base with the official reply of the department that handled it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    case_id: str
    title: str
    reply: str
    department: str | None
    score: Probability


class SimilarTicket(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ticket_id: str
    call_id: str
    title: str
    status: str
    department: str | None
    score: Probability
    likely_duplicate: bool


class AgentAssist(Message):
    """What the call-centre agent sees while the call is live."""

    SCHEMA: ClassVar[str] = "hotline.assist/v1"
    schema_id: Literal["hotline.assist/v1"] = "hotline.assist/v1"
    call_id: Identifier
    category: str | None
    confidence: Probability
    top_k: list[CategoryScore]
    sub_categories: list[CategoryScore] = Field(default_factory=list)
    district: str | None = None
    address: str | None = None
    urgency: Urgency = Urgency.NONE
    suggestions: list[SuggestedAnswer] = Field(default_factory=list)
    similar_tickets: list[SimilarTicket] = Field(default_factory=list)
    merge_into: str | None = Field(default=None, description="Ticket this call most likely duplicates.")
    classifier: str

    def key(self) -> str | None:
        return self.district or self.call_id


class DetectedEvent(Message):
    """An urban-management event a camera saw: it starts, persists and ends (not one per frame)."""

    SCHEMA: ClassVar[str] = "camera.event/v1"
    schema_id: Literal["camera.event/v1"] = "camera.event/v1"
    event_id: Identifier
    camera_id: Identifier
    zone_id: str | None = None
    kind: EventKind
    state: Literal["started", "ended"]
    started_at: AwareDatetime
    observed_at: AwareDatetime
    confidence: Probability
    bbox_xyxy: tuple[float, float, float, float] | None = None
    district: str | None = None
    address: str | None = None
    citymgmt_code: str | None = Field(default=None, description="数字化城管 event code used for routing.")
    detector: str
    snapshot_jpeg: Base64Bytes | None = None

    def key(self) -> str | None:
        return self.camera_id


class DispatchDecision(Message):
    """Where a case goes and why; department None means the manual dispatch queue."""

    SCHEMA: ClassVar[str] = "dispatch.decision/v1"
    schema_id: Literal["dispatch.decision/v1"] = "dispatch.decision/v1"
    decision_id: Identifier
    source: Source
    source_event_id: Identifier
    decided_at: AwareDatetime
    title: str
    description: str
    category: str | None = None
    district: str | None = None
    address: str | None = None
    department: str | None
    co_handlers: list[str] = Field(default_factory=list)
    priority: Priority
    deadline_hours: Annotated[int, Field(gt=0)]
    deadline_working_days: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="Set when the deadline is counted in working days (工作日) on the rules' calendar.")
    deadline_at: AwareDatetime | None = Field(
        default=None, description="The due time when the rules computed one (working days); else decided_at + hours.")
    direct_answer_allowed: bool = False
    rule_id: str | None
    rules_version: str
    manual_reason: str | None = None
    explanation: dict[str, Any] = Field(default_factory=dict, description="Inputs the rule saw.")
    snapshot_jpeg: Base64Bytes | None = Field(default=None, description="The camera event's annotated frame.")

    def key(self) -> str | None:
        return self.district or self.source_event_id

    @property
    def due_at(self) -> datetime:
        """The deadline: the rules' computed due time (working days), else decided_at + deadline_hours."""
        return self.deadline_at or self.decided_at + timedelta(hours=self.deadline_hours)


class TicketEvent(Message):
    """A change in a ticket's life (created, dispatched, accepted, returned ...), for downstream consumers."""

    SCHEMA: ClassVar[str] = "ticket.event/v1"
    schema_id: Literal["ticket.event/v1"] = "ticket.event/v1"
    ticket_id: Identifier
    source_event_id: Identifier
    transition: str
    status: str
    department: str | None
    priority: Priority
    deadline_at: AwareDatetime
    at: AwareDatetime
    actor: str
    reason: str | None = None
    title: str
    district: str | None = None
    transition_seq: int | None = Field(
        default=None, description="Audit-trail id of the transition; a repeated announcement repeats it."
    )

    def key(self) -> str | None:
        return self.ticket_id


class DeadLetter(Message):
    """A message a stage refused, kept with the reason so that nothing accepted is silently dropped."""

    SCHEMA: ClassVar[str] = "deadletter/v1"
    schema_id: Literal["deadletter/v1"] = "deadletter/v1"
    dead_letter_id: Identifier
    origin_topic: str
    stage: str
    error_type: Literal[
        "malformed",
        "oversized",
        "unknown_schema",
        "invalid",
        "unknown_camera",
        "not_an_image",
        "processing_error",
    ]
    reason: str
    details: list[dict[str, Any]] = Field(default_factory=list)
    key_text: str | None = None
    payload_b64: Base64Bytes
    payload_size: int
    payload_sha256: str
    payload_truncated: bool
    payload_masked: bool = Field(default=False, description=(
        "Phone and ID numbers in the kept payload are masked, so it is not byte for byte the original; "
        "payload_size and payload_sha256 are the original's."))
    rejected_at: AwareDatetime
