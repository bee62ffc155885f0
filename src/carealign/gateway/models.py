"""The gateway's tables in the review database: API keys, the exchange log and its judging queue.

They live on the review app's declarative base (:class:`carealign.review.models.Base`), so one
database, one set of Alembic migrations (``0003_gateway``) and one engine serve both. An
exchange that is flagged for people points at the review :class:`~carealign.review.models.Item`
it became.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from carealign.review.models import Base, utcnow


class GuardAction(StrEnum):
    """What guard mode did to a response: nothing, replaced it with a decline, or regenerated it."""

    NONE = "none"
    DECLINE = "decline"
    REGENERATE = "regenerate"


class ApiKey(Base):
    """A client's API key. Only the SHA-256 of the key is stored; the key itself is shown once."""

    __tablename__ = "gateway_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    group_name: Mapped[str | None] = mapped_column(String(64), default=None)
    rate_per_minute: Mapped[int] = mapped_column(Integer, default=60)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Exchange(Base):
    """One request and the response that left the gateway, with everything learned about it.

    ``messages`` is the conversation the client sent (redacted when redaction is on), ``prompt`` its
    last user turn, ``response`` what was returned, ``original_response`` what the policy wrote when
    guard mode replaced it. The harm estimate, the judge's verdict and the flags are filled in by
    the judging worker (monitor mode) or before the response leaves (guard mode); ``judged_at`` is
    null until then.
    """

    __tablename__ = "gateway_exchanges"
    __table_args__ = (
        Index("ix_gateway_exchanges_created_at", "created_at"),
        Index("ix_gateway_exchanges_prompt_sha256", "prompt_sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("gateway_keys.id", ondelete="SET NULL"), default=None)
    group_name: Mapped[str | None] = mapped_column(String(64), default=None)
    mode: Mapped[str] = mapped_column(String(16))
    policy: Mapped[str] = mapped_column(String(512))
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    prompt: Mapped[str] = mapped_column(Text)
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    original_response: Mapped[str | None] = mapped_column(Text, default=None)
    guard_action: Mapped[str] = mapped_column(String(16), default=GuardAction.NONE.value)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str] = mapped_column(String(16), default="stop")
    latency_ms: Mapped[float] = mapped_column(Float)
    generation_ms: Mapped[float] = mapped_column(Float)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    harm_level: Mapped[int | None] = mapped_column(Integer, default=None)
    harm_confidence: Mapped[float | None] = mapped_column(Float, default=None)
    harm_model: Mapped[str | None] = mapped_column(String(128), default=None)
    reviewed_harm_level: Mapped[int | None] = mapped_column(Integer, default=None)
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    score: Mapped[float | None] = mapped_column(Float, default=None)
    judge: Mapped[str | None] = mapped_column(String(255), default=None)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    judged_at: Mapped[datetime | None] = mapped_column(default=None)
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="SET NULL"), default=None)


class JudgeTask(Base):
    """An exchange waiting to be judged (monitor mode): written in the exchange's own transaction,
    deleted in the transaction that stores its judgement, so a crash leaves it here to be picked up.

    A worker claims tasks for ``lease`` seconds (``claimed_until``); an expired claim (its worker
    died) is taken over by the next worker.
    """

    __tablename__ = "gateway_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("gateway_exchanges.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
