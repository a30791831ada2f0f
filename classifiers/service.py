"""Everything the text side knows about one text, in one call: what the agent sees while the call is live."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from classifiers.assist import Assistant
from classifiers.knowledge import Encoder
from classifiers.stage import IntentModel, classify
from classifiers.taxonomy import SubcategoryIndex
from contracts import AgentAssist, Channel, ClassifiedCall, HotlineTranscript


class TextIntelligence:
    def __init__(self, model: IntentModel, encoder: Encoder, assistant: Assistant,
                 taxonomy: SubcategoryIndex | None, min_confidence: float, top_k: int = 3) -> None:
        self.model = model
        self.encoder = encoder
        self.assistant = assistant
        self.taxonomy = taxonomy
        self.min_confidence = min_confidence
        self.top_k = top_k

    def classify(self, transcript: HotlineTranscript) -> ClassifiedCall:
        return classify(self.model, transcript, self.min_confidence, self.top_k, self.taxonomy, self.encoder)

    def analyse(self, text: str, title: str | None = None, district_hint: str | None = None,
                call_id: str | None = None) -> tuple[ClassifiedCall, AgentAssist]:
        """Classify and assist a live text without recording it (nothing is stored until a ticket is made)."""
        transcript = HotlineTranscript(
            call_id=call_id or f"live-{uuid.uuid4().hex[:12]}", received_at=datetime.now(UTC),
            channel=Channel.PHONE, title=title, text=text, district_hint=district_hint,
        )
        call = self.classify(transcript)
        return call, self.assistant.assist(call, remember=False)
