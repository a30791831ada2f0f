"""The assist stage: for each classified call, suggested answers from the knowledge base and similar open
tickets of the place (same district, or placed only in the city), with a merge suggestion for a likely repeat.

It keeps its own view of tickets from the tickets topic (a second stage), so it never reads another
stage's store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from classifiers.assist_store import OPEN_TICKET_STATUSES, AssistStore
from classifiers.data import message_text
from classifiers.knowledge import Encoder, FloatArray, KnowledgeIndex
from classifiers.lexical import LexicalSimilarity
from contracts import AgentAssist, ClassifiedCall, Message, SimilarTicket, SuggestedAnswer, TicketEvent, Topic
from hotline.settings import AssistSettings
from streams.stage import Output, Stage

REPLY_PREVIEW_CHARS = 600
FORGET_EVERY = timedelta(hours=1)
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of this machine's clock a call's time may be and still count


class Assistant:
    def __init__(self, knowledge: KnowledgeIndex, store: AssistStore, encoder: Encoder, lexical: LexicalSimilarity,
                 settings: AssistSettings | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.knowledge = knowledge
        self.store = store
        self.encoder = encoder
        self.lexical = lexical
        self.settings = settings or AssistSettings()
        self.clock = clock
        self._forgot_at: datetime | None = None

    def assist(self, call: ClassifiedCall, remember: bool = True) -> AgentAssist:
        text = message_text(call.title, call.text)
        embedding = (np.asarray(call.embedding, dtype=np.float32) if call.embedding is not None
                     else self.encoder.encode([text])[0])
        similar = self._similar_tickets(call, text)
        if remember:
            self.store.remember_call(call.call_id, call.district, call.title or call.text[:60], text,
                                     call.received_at)
            # a call dated ahead (a wrong clock, a typo) must not move "now" there: it would drop the whole window
            self._forget_old_calls(min(call.received_at, self.clock() + CLOCK_SKEW))
        duplicates = [s for s in similar if s.likely_duplicate]
        return AgentAssist(
            call_id=call.call_id, category=call.category, confidence=call.confidence, top_k=call.top_k,
            sub_categories=call.sub_categories, district=call.district, address=call.address,
            urgency=call.urgency, suggestions=self._suggestions(embedding), similar_tickets=similar,
            merge_into=duplicates[0].ticket_id if duplicates else None, classifier=call.classifier,
        )

    def _forget_old_calls(self, now: datetime) -> None:
        """Calls older than the window are never compared again: drop them (by the calls' own clock, never ahead
        of this machine's; at most hourly), so the store holds a window of texts, not the whole history."""
        if self._forgot_at is not None and now - self._forgot_at < FORGET_EVERY:
            return
        self.store.forget_calls_before(now - timedelta(days=self.settings.window_days))
        self._forgot_at = now

    def _suggestions(self, embedding: FloatArray) -> list[SuggestedAnswer]:
        return [
            SuggestedAnswer(case_id=case.case_id, title=case.title, reply=case.reply[:REPLY_PREVIEW_CHARS],
                            department=case.department, score=float(np.clip(score, 0, 1)))
            for case, score in self.knowledge.search(embedding, self.settings.suggestions)
        ]

    def _similar_tickets(self, call: ClassifiedCall, text: str) -> list[SimilarTicket]:
        since = call.received_at - timedelta(days=self.settings.window_days)
        calls = self.store.recent_calls(call.district, since, exclude=call.call_id)
        if not calls:
            return []
        scores = self.lexical.scores_by_key(text, [c.call_id for c in calls], [c.text for c in calls])
        close = [(calls[i], float(scores[i])) for i in np.argsort(-scores)
                 if scores[i] >= self.settings.similar_min_score]
        tickets = self.store.tickets_for([f"call:{c.call_id}" for c, _ in close])
        similar = []
        for past, score in close:
            ticket = tickets.get(f"call:{past.call_id}")
            if ticket is None or ticket.status not in OPEN_TICKET_STATUSES:
                continue
            similar.append(SimilarTicket(
                ticket_id=ticket.ticket_id, call_id=past.call_id, title=ticket.title, status=ticket.status,
                department=ticket.department, score=min(score, 1.0),
                likely_duplicate=score >= self.settings.duplicate_min_score,
            ))
        return similar[: self.settings.similar_limit]

    def note(self, event: TicketEvent) -> None:
        self.store.note_ticket(event.source_event_id, event.ticket_id, event.status, event.department,
                               event.title, event.at, transition_seq=event.transition_seq)


def make_assist_stages(assistant: Assistant) -> list[Stage]:
    def handle_call(message: Message) -> Sequence[Output]:
        assert isinstance(message, ClassifiedCall)
        return [Output(Topic.AGENT_ASSIST, assistant.assist(message))]

    def handle_ticket_event(message: Message) -> Sequence[Output]:
        assert isinstance(message, TicketEvent)
        assistant.note(message)
        return []

    return [
        Stage(name="assist", input_topic=Topic.CLASSIFIED_CALLS, handle=handle_call),
        Stage(name="assist-ticket-view", input_topic=Topic.TICKETS, handle=handle_ticket_event),
    ]
