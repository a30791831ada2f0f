"""The text stage: a transcript in, a classified call (category, confidence, place, urgency) out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from classifiers.data import message_text
from classifiers.extract import assess_urgency, extract_place
from classifiers.knowledge import Encoder, FloatArray
from classifiers.taxonomy import SubcategoryIndex
from contracts import CategoryScore, ClassifiedCall, HotlineTranscript, Message, Topic
from streams.stage import Output, Stage


class IntentModel(Protocol):
    name: str
    labels: list[str]

    def predict_proba(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]: ...


@runtime_checkable
class EmbeddingIntentModel(IntentModel, Protocol):
    """A model that also gives the sentence embedding its probabilities came from."""

    def predict_with_embeddings(self, texts: list[str]) -> tuple[FloatArray, FloatArray]: ...


def classify(model: IntentModel, transcript: HotlineTranscript, min_confidence: float, top_k: int,
             taxonomy: SubcategoryIndex | None = None, encoder: Encoder | None = None) -> ClassifiedCall:
    """`encoder` gives the embedding when the intent model has none of its own (e.g. the baseline)."""
    text = message_text(transcript.title, transcript.text)
    embedding: FloatArray | None = None
    if isinstance(model, EmbeddingIntentModel):
        embeddings, probability_rows = model.predict_with_embeddings([text])
        embedding, probabilities = embeddings[0], probability_rows[0]
    else:
        probabilities = model.predict_proba([text])[0]
        if encoder is not None:
            embedding = encoder.encode([text])[0]
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
        sub_categories=(taxonomy.suggest(text, embedding, model.labels[best]) if taxonomy is not None
                        and embedding is not None else []),
        embedding=[round(float(v), 6) for v in embedding] if embedding is not None else None,
    )


def make_classify_stage(model: IntentModel, min_confidence: float, top_k: int = 3,
                        taxonomy: SubcategoryIndex | None = None, encoder: Encoder | None = None) -> Stage:
    def handle(message: Message) -> Sequence[Output]:
        assert isinstance(message, HotlineTranscript)
        call = classify(model, message, min_confidence, top_k, taxonomy, encoder)
        return [Output(Topic.CLASSIFIED_CALLS, call)]

    return Stage(name="classify", input_topic=Topic.TRANSCRIPTS, handle=handle)
