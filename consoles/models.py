"""The consoles' own table: calls the agent answered directly (migration 0005_direct_answers).

A directly answered call creates no ticket, so 直接答复率 (direct answers / all calls) needs this record: the
call id, the caller's text as HotlineTranscript masked it, who answered, when, and the knowledge-base case
whose reply was used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ConsoleBase(DeclarativeBase):
    pass


class DirectAnswer(ConsoleBase):
    __tablename__ = "direct_answers"

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    agent: Mapped[str] = mapped_column(String(120))  # the audit-trail name of the agent (role:name)
    title: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)  # PII-masked by HotlineTranscript
    district: Mapped[str | None] = mapped_column(String(64), index=True)
    answer: Mapped[str] = mapped_column(Text)  # what the agent told the caller
    case_id: Mapped[str | None] = mapped_column(String(64), index=True)  # knowledge-base case used, if any
