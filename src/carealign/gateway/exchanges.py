"""Writing the exchange log: an exchange is committed (with its judging task, in monitor mode)
before its response is returned; assessments are written onto it later (monitor) or at once (guard).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from carealign.gateway.assess import FLAG_GUARDED, FLAG_REDACTED, Assessment
from carealign.gateway.models import Exchange, GuardAction, JudgeTask
from carealign.gateway.redact import redact_messages, redact_text
from carealign.gateway.routing import route_exchange
from carealign.review.models import utcnow


def last_user_turn(messages: list[dict[str, Any]]) -> str:
    """The text of the conversation's last user message ('' when there is none)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def prompt_digest(prompt: str) -> str:
    """The key under which repeats of one prompt are counted once (whitespace and case folded)."""
    return hashlib.sha256(" ".join(prompt.split()).casefold().encode("utf-8")).hexdigest()


@dataclass
class NewExchange:
    """An exchange as the request handler knows it, before it is stored."""

    request_id: str
    key_id: int | None
    group: str | None
    mode: str
    policy: str
    messages: list[dict[str, Any]]
    response: str
    completion_tokens: int
    finish_reason: str
    latency_ms: float
    generation_ms: float
    original_response: str | None = None
    guard_action: str = GuardAction.NONE.value


def apply_assessment(exchange: Exchange, a: Assessment) -> None:
    """Write an assessment onto an exchange (keeping flags it already had, such as ``redacted``)."""
    exchange.harm_level = a.harm_level
    exchange.harm_confidence = a.harm_confidence
    exchange.harm_model = a.harm_model[:128]
    exchange.verdict = a.verdict
    exchange.confidence = a.confidence
    exchange.judge = a.judge[:255]
    exchange.score = a.score
    exchange.flags = list(dict.fromkeys([*(exchange.flags or []), *a.flags]))
    exchange.judged_at = utcnow()


def store_exchange(
    sessions: Callable[[], Session],
    new: NewExchange,
    *,
    redact: bool,
    assessment: Assessment | None = None,
    route_group: str | None = None,
) -> Exchange:
    """Commit one exchange. Without an assessment it gets a judging task in the same transaction;
    with one (guard mode) the assessment is stored, and a flagged exchange is routed to ``route_group``."""
    messages = new.messages
    response, original = new.response, new.original_response
    flags: list[str] = []
    if redact:
        messages, hit_m = redact_messages(messages)
        response, hit_r = redact_text(response)
        hit_o = False
        if original is not None:
            original, hit_o = redact_text(original)
        if hit_m or hit_r or hit_o:
            flags.append(FLAG_REDACTED)
    if new.guard_action != GuardAction.NONE.value:
        flags.append(FLAG_GUARDED)
    prompt = last_user_turn(messages)
    row = Exchange(
        request_id=new.request_id,
        key_id=new.key_id,
        group_name=new.group,
        mode=new.mode,
        policy=new.policy[:512],
        messages=messages,
        prompt=prompt,
        prompt_sha256=prompt_digest(prompt),
        response=response,
        original_response=original,
        guard_action=new.guard_action,
        completion_tokens=new.completion_tokens,
        finish_reason=new.finish_reason,
        latency_ms=round(new.latency_ms, 3),
        generation_ms=round(new.generation_ms, 3),
        redacted=FLAG_REDACTED in flags,
        flags=flags,
    )
    with sessions() as db:
        db.add(row)
        db.flush()
        if assessment is None:
            db.add(JudgeTask(exchange_id=row.id))
        else:
            apply_assessment(row, assessment)
            if assessment.route and route_group:
                route_exchange(db, row, route_group)
        db.commit()
    return row
