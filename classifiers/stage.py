"""The text stage: a transcript in, a classified call (category, confidence, place, urgency) out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from classifiers.data import message_text
from classifiers.extract import assess_urgency, extract_place
from contracts import CategoryScore, ClassifiedCall, HotlineTranscript, Message, Topic
from streams.stage import Output, Stage


class IntentModel(Protocol):
    name: str
    labels: list[str]

    def predict_proba(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]: ...


def classify(model: IntentModel, transcript: HotlineTranscript, min_confidence: float, top_k: int) -> ClassifiedCall:
    text = message_text(transcript.title, transcript.text)
    probabilities = model.predict_proba([text])[0]
    ranked = np.argsort(-probabilities)[:top_k]
    best = int(ranked[0])
    confidence = float(probabilities[best])
    place = extract_place(text, transcript.district_hint)
    urgency = assess_urgency(text)
    return ClassifiedCall(
        call_id=transcript.call_id,
        received_at=transcript.received_at,
        channel=transcript.channel,
        title=transcript.title,
        text=transcript.text,
        category=model.labels[best] if confidence >= min_confidence else None,
        confidence=confidence,
        top_k=[CategoryScore(label=model.labels[i], score=float(probabilities[i])) for i in ranked],
        classifier=model.name,
        district=place.district or place.city,
        address=place.address,
        urgency=urgency.level,
        urgency_terms=urgency.terms,
    )


def make_classify_stage(model: IntentModel, min_confidence: float, top_k: int = 3) -> Stage:
    def handle(message: Message) -> Sequence[Output]:
        assert isinstance(message, HotlineTranscript)
        return [Output(Topic.CLASSIFIED_CALLS, classify(model, message, min_confidence, top_k))]

    return Stage(name="classify", input_topic=Topic.TRANSCRIPTS, handle=handle)
