"""Wiring: which stages run, with which models, on which transport. Stages only meet through topics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import structlog

from classifiers import BaselineClassifier, IntentModel, make_classify_stage
from classifiers.assist import Assistant, make_assist_stages
from classifiers.assist_store import AssistStore
from classifiers.ensemble import EnsembleIntentModel
from classifiers.knowledge import KnowledgeIndex, lexical_similarity, load_knowledge_base
from classifiers.lexical import LexicalSimilarity
from classifiers.service import TextIntelligence
from classifiers.stage import classify
from classifiers.taxonomy import SubcategoryIndex
from contracts import ClassifiedCall, HotlineTranscript
from dispatch_rules import make_dispatch_stages
from dispatch_rules.router import DecisionTableRouter
from hotline.settings import ModelChoice, Settings
from streams import EmbeddedBus, Stage, Transport
from tickets import TicketStore, make_ticketing_stage
from vision import CameraRegistry, OnnxYoloDetector, make_detect_stage

if TYPE_CHECKING:
    from classifiers.e5_model import E5IntentClassifier

log = structlog.get_logger(__name__)

BASELINE_MODEL_FILE = "baseline-tfidf-char-lr.joblib"
CallClassifier = Callable[[HotlineTranscript], ClassifiedCall]


@dataclass
class Pipeline:
    stages: list[Stage]
    disabled: dict[str, str] = field(default_factory=dict)  # stage -> why it is not running


def build_pipeline(settings: Settings, store: TicketStore) -> Pipeline:
    stages: list[Stage] = []
    disabled: dict[str, str] = {}
    text = build_text_intelligence(settings)
    if isinstance(text, TextIntelligence):
        stages.append(make_classify_stage(text.model, settings.classifier.min_confidence, settings.classifier.top_k,
                                          text.taxonomy, text.encoder))
        stages.extend(make_assist_stages(text.assistant))
    else:
        disabled["assist"] = text
        baseline = load_baseline(settings)
        if settings.classifier.model is ModelChoice.E5:
            log.warning("classifier_model_unavailable", configured=ModelChoice.E5.value, classifying_with=baseline.name,
                        reason=f"{text}; until then the baseline runs alone (HOTLINE_CLASSIFIER__MODEL is ignored)")
        stages.append(make_classify_stage(baseline, settings.classifier.min_confidence, settings.classifier.top_k))
    detect = _detect_stage(settings)
    if isinstance(detect, str):
        disabled["detect"] = detect
    else:
        stages.append(detect)
    router = DecisionTableRouter.published(store.engine, refresh_seconds=settings.rules_refresh_seconds)
    stages.extend(make_dispatch_stages(router))
    stages.append(make_ticketing_stage(store))
    for name, reason in disabled.items():
        log.warning("stage_disabled", stage=name, reason=reason)
    return Pipeline(stages, disabled)


def intent_model(settings: Settings, e5: E5IntentClassifier, choice: ModelChoice | None = None) -> IntentModel:
    """The configured intent model (or `choice`), e5 being built."""
    choice = choice or settings.classifier.model
    if choice is ModelChoice.E5:
        return e5
    if choice is ModelChoice.ENSEMBLE:
        return EnsembleIntentModel(e5, load_baseline(settings), settings.classifier.ensemble_e5_weight)
    return load_baseline(settings)


def call_classifier(settings: Settings, choice: ModelChoice | None = None) -> tuple[CallClassifier, str]:
    """What the classify stage does to a transcript (category, sub-categories, place, urgency), as a function,
    for replaying calls offline (rule backtests); and the model's name. Without e5 built: the baseline alone and
    no sub-categories, as the pipeline then runs."""
    from classifiers.e5_setup import e5_model_path

    limits = settings.classifier
    e5_path = e5_model_path(settings.models_dir)
    if not e5_path.exists():
        if choice not in (None, ModelChoice.BASELINE):
            raise FileNotFoundError(f"no e5 model at {e5_path}: run `hotline setup` to build it")
        baseline = load_baseline(settings)
        return partial(classify, baseline, min_confidence=limits.min_confidence, top_k=limits.top_k), baseline.name
    from classifiers.e5_model import E5IntentClassifier

    e5 = E5IntentClassifier(e5_path)
    model = intent_model(settings, e5, choice)
    cases = load_knowledge_base(settings.hotline_data_dir / "kb_replies.csv")
    taxonomy = _subcategory_index(settings, e5, lexical_similarity(cases))
    replay = partial(classify, model, min_confidence=limits.min_confidence, top_k=limits.top_k, taxonomy=taxonomy,
                     encoder=e5)
    return replay, model.name


def load_baseline(settings: Settings) -> BaselineClassifier:
    return BaselineClassifier.load(settings.models_dir / BASELINE_MODEL_FILE)


def build_text_intelligence(settings: Settings) -> TextIntelligence | str:
    """The e5 models and indexes, or why they are not available."""
    from classifiers.e5_setup import e5_model_path

    e5_path = e5_model_path(settings.models_dir)
    if not e5_path.exists():
        return f"no e5 model at {e5_path}: run `hotline setup` to build it"
    from classifiers.e5_model import E5IntentClassifier

    e5 = E5IntentClassifier(e5_path)
    model = intent_model(settings, e5)
    cases = load_knowledge_base(settings.hotline_data_dir / "kb_replies.csv")
    knowledge = KnowledgeIndex.build(cases, e5, settings.models_dir / "indexes")
    lexical = lexical_similarity(cases)  # one repeat-report score for sub-categories and similar tickets
    taxonomy = _subcategory_index(settings, e5, lexical)
    assistant = Assistant(knowledge, AssistStore(settings.resolved_database_url), e5, lexical, settings.assist)
    return TextIntelligence(model, e5, assistant, taxonomy, settings.classifier.min_confidence,
                            settings.classifier.top_k)


def _subcategory_index(settings: Settings, e5: E5IntentClassifier, lexical: LexicalSimilarity) -> SubcategoryIndex:
    return SubcategoryIndex.build(settings.taxonomy_csv, e5, lexical, settings.models_dir / "indexes")


def _detect_stage(settings: Settings) -> Stage | str:
    model_path = settings.vision.detector_model
    if not model_path.exists():
        return (f"no detector model at {model_path}: frames are kept on the frames topic until one is "
                "installed (train one with the camera-path commands)")
    detector = OnnxYoloDetector(model_path, score_threshold=settings.vision.score_threshold)
    registry = CameraRegistry.load(settings.cameras_file)
    batch_size = settings.vision.batch_size or (8 if "CUDAExecutionProvider" in detector.providers else 1)
    return make_detect_stage(registry, detector, settings.limits.max_frame_pixels, batch_size)


def open_embedded_bus(settings: Settings) -> EmbeddedBus:
    return EmbeddedBus(settings.journal_path, settings.max_message_bytes)


def open_transport(settings: Settings) -> Transport:
    if settings.transport == "kafka":
        from streams.kafka import KafkaTransport

        return KafkaTransport(settings.kafka, settings.kafka_topic)
    return open_embedded_bus(settings)


def open_store(settings: Settings) -> TicketStore:
    return TicketStore(settings.resolved_database_url)
