"""The one settings object: defaults < config file (TOML) < environment variables (HOTLINE_...)."""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from contracts import Topic

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "HOTLINE_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # the standard library's other names


class SettingsError(ValueError):
    """The settings cannot be read (a missing or unreadable config file); the message says which and why."""


class NestedSettings(BaseModel):
    """A table of settings: a misspelt key is refused, as at the top level, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(NestedSettings):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = 4
    replication_factor: int = 1
    app_id: str = "hotline-dispatch"
    session_timeout_ms: int = 30_000
    # Kafka-protocol brokers that misreport end offsets (e.g. Tansu) need batches of one.
    producer_max_batch_size: int = 16_384
    batch_wait_seconds: float = Field(0.05, gt=0, description=(
        "How long a batching stage (camera detection) waits to fill a batch before it runs what it has."))
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(None, description="Give it by env var (HOTLINE_KAFKA__SASL_PASSWORD).")
    ssl_cafile: Path | None = Field(None, description="PEM bundle of the CAs to trust (default: the system's).")
    ssl_certfile: Path | None = Field(None, description="Client certificate (PEM) for brokers that ask for one.")
    ssl_keyfile: Path | None = Field(None, description="The client certificate's private key (PEM).")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username and "
                             "sasl_password")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(f"SASL settings are given but security_protocol is {self.security_protocol}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ssl_cafile or self.ssl_certfile):
            raise ValueError(f"TLS files are given but security_protocol is {self.security_protocol}")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")


class LimitSettings(NestedSettings):
    max_text_message_bytes: int = 256 * 1024
    max_frame_message_bytes: int = 8 * 1024 * 1024
    max_frame_pixels: int = 40_000_000


class ModelChoice(StrEnum):
    """The intent models a call can be classified with."""

    ENSEMBLE = "ensemble"
    BASELINE = "baseline"
    E5 = "e5"


class ClassifierSettings(NestedSettings):
    model: ModelChoice = Field(ModelChoice.ENSEMBLE, description=(
        "Which model names the category. ensemble: the baseline's and e5's probabilities averaged (falls back to "
        "the baseline while e5 is not built); e5 always gives the embeddings when built."))
    ensemble_e5_weight: float = Field(0.25, ge=0, le=1, description="e5's share of the ensemble's probabilities.")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Below this the call goes to manual dispatch.")
    top_k: int = 3


class AssistSettings(NestedSettings):
    """What the agent is shown beside a call. The two scores are the repeat-report score (classifiers/lexical.py);
    both defaults were fixed on 150 hand-labelled message pairs and measured on 80 others
    (tests/classifiers/duplicate_gold.yaml, `hotline eval duplicates`)."""

    suggestions: int = Field(3, ge=1, le=20, description="Past cases with their official replies.")
    similar_min_score: float = Field(0.125, ge=0, le=1, description=(
        "An open ticket this alike is listed as similar (best F1 on the labelled pairs)."))
    duplicate_min_score: float = Field(0.30, ge=0, le=1, description=(
        "This alike: merge suggested, flagged at the ticket desk, grouped into one hot issue (nine in ten right)."))
    window_days: int = Field(30, ge=1, description="How far back calls are compared; older ones are dropped.")
    similar_limit: int = Field(5, ge=1, le=50)


class VisionSettings(NestedSettings):
    detector_model: Path = REPO_ROOT / "vision" / "models" / "urban-yolo.onnx"
    # low on purpose: the committed CPU-trained detector is under-confident; zones set the real thresholds
    score_threshold: float = Field(0.10, ge=0, le=1)
    batch_size: int | None = Field(None, ge=1, le=256, description=(
        "Frames, from any cameras, that go through the detector in one run; default 8 on a GPU, 1 on a CPU "
        "(where batching measured no faster)."))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    data_dir: Path = REPO_ROOT / "var"
    shared_dir: Path = REPO_ROOT.parent / "shared"
    transport: Literal["embedded", "kafka"] = "embedded"
    database_url: str | None = Field(None, description="SQLAlchemy URL; default is a SQLite file in data_dir.")
    cameras_file: Path = REPO_ROOT / "vision" / "cameras.yaml"
    log_format: Literal["console", "json"] = "console"
    log_level: LogLevel = Field("INFO", description=(
        "debug, info, warning (warn), error or critical (fatal), any case."))
    rules_refresh_seconds: float = Field(5.0, gt=0, description="How often workers look for newly published rules.")
    outbox_relay_seconds: float = Field(5.0, gt=0, description=(
        "How often the API publishes ticket events left in the outbox (after a broker outage or a crash)."))
    escalation_sweep_seconds: float = Field(600.0, ge=0, description=(
        "How often the API escalates overdue tickets (督办); 0 turns it off (then cron "
        "`hotline tickets escalate-overdue`)."))
    kafka: KafkaSettings = KafkaSettings()
    limits: LimitSettings = LimitSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    assist: AssistSettings = AssistSettings()
    vision: VisionSettings = VisionSettings()

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name = value.strip().upper()
        return _LEVEL_ALIASES.get(name, name)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get(CONFIG_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(_toml_source(settings_cls, Path(config_file)))
        return tuple(sources)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tickets.sqlite3'}"

    @property
    def hotline_data_dir(self) -> Path:
        return self.shared_dir / "data" / "hotline"

    @property
    def taxonomy_csv(self) -> Path:
        return self.shared_dir / "data" / "taxonomy" / "taidi2020_attachment1_3level_taxonomy.csv"

    def max_message_bytes(self, topic: Topic) -> int:
        if topic in (Topic.FRAMES, Topic.CAMERA_EVENTS, Topic.DISPATCH_DECISIONS, Topic.DEAD_LETTER):  # snapshots
            return self.limits.max_frame_message_bytes
        return self.limits.max_text_message_bytes

    def kafka_topic(self, topic: Topic) -> str:
        return f"{self.kafka.topic_prefix}{topic.value}"


def _toml_source(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    """The config file's settings; pydantic-settings would silently skip a file that is not there."""
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise SettingsError(f"{CONFIG_ENV} names {path}, which {problem}")
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"{CONFIG_ENV} names {path}, which cannot be read as TOML: {error}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def describe_settings_error(error: SettingsError | ValidationError) -> str:
    """One line: each refused setting by its key and its environment variable."""
    if isinstance(error, SettingsError):
        return str(error)
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        variable = ENV_PREFIX + "__".join(str(part) for part in item["loc"]).upper()
        what = "no such setting (misspelt?)" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{key} ({variable}): {what}")
    return "invalid settings: " + "; ".join(problems)


def settings_or_exit() -> Settings:
    """The process's settings, or exit with a one-line error instead of a traceback."""
    try:
        return get_settings()
    except (SettingsError, ValidationError) as error:
        raise SystemExit(f"error: {describe_settings_error(error)}") from None
