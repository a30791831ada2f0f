"""Agent assist over HTTP: what the call-centre console asks while a call is live, and how a call ends.

* POST /api/assist: the text models' reading of a live text (category, top-k, sub-categories, place, urgency,
  suggested answers, similar open tickets) plus `dispatch_preview`: what the active routing rules would decide.
  Nothing is stored.
* POST /api/assist/feedback: the agent's verdict on a suggested answer (used / wrong) of a knowledge-base case;
  the note is masked before it is stored.
* POST /api/calls: the call ends. Either a ticket is wanted (the call goes on the transcripts topic, the
  pipeline classifies, routes and tickets it) or the agent answered directly (recorded as answered for
  直接答复率; no ticket, nothing published).

Authentication: a bearer token (agent or manager), or the console's session cookie with its CSRF header.
The text models come from `app.state.text_intelligence` (a classifiers.service.TextIntelligence), set where
the app is built; without it /api/assist answers 503.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.context import ApiContext
from api.deps import Context, Routing
from api.users import Principal, Role
from classifiers.assist_store import AssistStore
from classifiers.data import message_text
from classifiers.extract import extract_place
from classifiers.service import TextIntelligence
from consoles.auth import api_or_console_user
from consoles.direct_answers import DuplicateCall, record_direct_answer
from contracts import CITY_TZ, AgentAssist, Channel, HotlineTranscript, Priority, Topic
from contracts.messages import Identifier

router = APIRouter(prefix="/api", tags=["call centre"])

Agent = Annotated[Principal, Depends(api_or_console_user(Role.AGENT, Role.MANAGER))]
NOT_BUILT = ("the text models are not built (no text intelligence in this API process): run `hotline setup`, "
             "then restart the API")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssistIn(Body):
    text: str = Field(min_length=1, max_length=20_000, description="The transcript so far, or a pasted message.")
    title: str | None = Field(None, max_length=500)
    district_hint: str | None = Field(None, max_length=64, description="Where the caller says they are.")


class DispatchPreview(BaseModel):
    """What the active routing rules would decide for this call if it became a ticket now."""

    department: str | None = Field(description="None: the call would go to the manual dispatch queue.")
    co_handlers: list[str]
    priority: Priority
    deadline_hours: int = Field(description="Hours until the deadline.")
    deadline_working_days: int | None = Field(description="Set when the deadline counts working days (工作日).")
    deadline_at: datetime = Field(description="When the ticket would be due.")
    direct_answer_allowed: bool = Field(description="The rules let the agent answer this kind of call directly.")
    rule_id: str | None
    rules_version: str
    manual_reason: str | None


class AssistOut(AgentAssist):
    dispatch_preview: DispatchPreview


class FeedbackIn(Body):
    call_id: str = Field(min_length=1, max_length=128)
    case_id: str = Field(min_length=1, max_length=64)
    verdict: Literal["used", "wrong"]
    note: str | None = Field(None, max_length=2000)


class FeedbackOut(BaseModel):
    recorded: bool
    call_id: str
    case_id: str
    verdict: str


class CallIn(Body):
    text: str = Field(min_length=1, max_length=20_000)
    title: str | None = Field(None, max_length=500)
    caller_phone: str | None = Field(None, max_length=32, description="Masked before anything is kept.")
    district_hint: str | None = Field(None, max_length=64)
    answered_directly: bool = Field(False, description="Answered on the phone: recorded, no ticket.")
    answer: str | None = Field(None, max_length=20_000, description="What the agent told the caller (direct answers).")
    case_id: str | None = Field(None, max_length=64, description="The suggested answer's knowledge-base case used.")
    call_id: Identifier | None = Field(None, description="Keep the id /api/assist gave the live call; default: new.")


class CallOut(BaseModel):
    call_id: str
    answered_directly: bool
    status: Literal["answered_directly", "submitted"]
    source_event_id: str | None = Field(description="The ticket will carry this source event id (submitted calls).")


def text_intelligence(request: Request) -> TextIntelligence:
    found: TextIntelligence | None = getattr(request.app.state, "text_intelligence", None)
    if found is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NOT_BUILT)
    return found


def assist_store(request: Request, context: Context) -> AssistStore:
    state = request.app.state
    found: AssistStore | None = getattr(state, "assist_feedback_store", None)
    if found is None:
        found = AssistStore(context.settings.resolved_database_url, migrate=False)  # the API's DB is migrated
        state.assist_feedback_store = found
    return found


@router.post("/assist", summary="Assist a live call: category, place, urgency, answers, similar tickets, routing",
             responses={503: {"description": "The text models are not built (`hotline setup`)."}})
def assist(
    body: AssistIn,
    principal: Agent,
    intelligence: Annotated[TextIntelligence, Depends(text_intelligence)],
    routing: Routing,
) -> AssistOut:
    try:
        call, assisted = intelligence.analyse(body.text, body.title, body.district_hint)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _problems(error)) from None
    decision = routing.route_call(call)
    preview = DispatchPreview(
        department=decision.department, co_handlers=list(decision.co_handlers), priority=decision.priority,
        deadline_hours=decision.deadline_hours, deadline_working_days=decision.deadline_working_days,
        deadline_at=decision.due_at,
        direct_answer_allowed=decision.direct_answer_allowed,
        rule_id=decision.rule_id, rules_version=decision.rules_version, manual_reason=decision.manual_reason)
    return AssistOut(**assisted.model_dump(), dispatch_preview=preview)


@router.post("/assist/feedback", summary="The agent's verdict on a suggested answer",
             responses={422: {"description": "The case is not in the knowledge base, or the body is invalid."},
                        503: {"description": "The text models are not built (`hotline setup`)."}})
def assist_feedback(
    body: FeedbackIn,
    principal: Agent,
    store: Annotated[AssistStore, Depends(assist_store)],
    intelligence: Annotated[TextIntelligence, Depends(text_intelligence)],
) -> FeedbackOut:
    if not any(case.case_id == body.case_id for case in intelligence.assistant.knowledge.cases):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"case {body.case_id!r} is not in the knowledge base: no answer was suggested from it")
    store.record_feedback(body.call_id, body.case_id, body.verdict, principal.actor, body.note)
    return FeedbackOut(recorded=True, call_id=body.call_id, case_id=body.case_id, verdict=body.verdict)


@router.post("/calls", summary="End a call: make a ticket of it, or record that it was answered directly",
             responses={409: {"description": "A direct answer is already recorded under this call id, or the id "
                                             "is already a ticket's with another text."},
                        422: {"description": "The call is invalid, or a direct answer lacks the answer."}})
def end_call(body: CallIn, context: Context, principal: Agent) -> CallOut:
    now = context.clock()
    call_id = body.call_id or f"call-{now.astimezone(CITY_TZ):%Y%m%d}-{secrets.token_hex(6)}"
    try:
        transcript = HotlineTranscript(call_id=call_id, received_at=now, channel=Channel.PHONE, title=body.title,
                                       text=body.text, caller_phone=body.caller_phone,
                                       district_hint=body.district_hint)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _problems(error)) from None
    if not body.answered_directly:
        _check_not_ticketed_otherwise(context, transcript)
        context.transport.publish(Topic.TRANSCRIPTS, transcript)
        return CallOut(call_id=call_id, answered_directly=False, status="submitted",
                       source_event_id=f"call:{call_id}")
    answer = (body.answer or "").strip()
    if not answer:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "a direct answer needs `answer`: what the caller was told")
    place = extract_place(message_text(transcript.title, transcript.text), transcript.district_hint)
    try:
        record_direct_answer(context.store, transcript, principal.actor, answer, body.case_id, now,
                             district=place.district or place.city)
    except DuplicateCall:
        raise HTTPException(status.HTTP_409_CONFLICT, f"call {call_id} was already answered") from None
    return CallOut(call_id=call_id, answered_directly=True, status="answered_directly", source_event_id=None)


def _check_not_ticketed_otherwise(context: ApiContext, transcript: HotlineTranscript) -> None:
    """Ticket creation is idempotent on `call:<id>`: a known id with another text would make no ticket of it.
    The same text is a retry (the ticket keeps the masked text, as `transcript` has it)."""
    ticket = context.store.by_source_event(f"call:{transcript.call_id}")
    if ticket is not None and ticket.description != transcript.text:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"call {transcript.call_id} is already ticket {ticket.id} with another text: "
                            "a new call needs a new call id (or none)")


def _problems(error: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
