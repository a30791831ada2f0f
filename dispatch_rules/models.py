"""Rule-set versions in the ticket database (migration tickets/migrations/versions/0002_rule_versions.py).

`rule_versions` keeps every published rule set (its files, content hash, author, time, note); `rule_activations`
is the log of which version became active when (publish, rollback, the shipped default). The active version
is the one named by the newest activation: routers poll that one row to pick up changes without a restart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class RulesBase(DeclarativeBase):
    pass


class RuleVersion(RulesBase):
    __tablename__ = "rule_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the version number
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    author: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str | None] = mapped_column(String(500))  # where it was published from
    files: Mapped[dict[str, str]] = mapped_column(JSON)  # file name -> text


class RuleActivation(RulesBase):
    __tablename__ = "rule_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("rule_versions.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # publish | rollback | default
    actor: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
