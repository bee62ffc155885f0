"""Routing risky exchanges to people: each becomes a label item in a review group's queue, first in line.

The exchange's conversation becomes a review :class:`~carealign.review.models.Prompt` (keyed by
its text, so repeats of one question share it) carrying the *estimated* harm level, the policy's
response a :class:`~carealign.review.models.Response` (the original one where guard mode replaced
it: reviewers label what the policy did), the gateway's judgement a
:class:`~carealign.review.models.JudgeVerdict`, and the item's priority is the review queue's own
(:func:`carealign.review.queue.label_priority`) plus :data:`LIVE_TRAFFIC_BOOST`, so live traffic
comes before imported runs. Reviewers' labels and corrections then flow back through the review
app's exports and :func:`carealign.review.load_human_feedback` as for any item.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from carealign.gateway.models import Exchange
from carealign.review.accounts import ensure_group
from carealign.review.audit import Actor, record
from carealign.review.models import Item, ItemKind, ItemStatus, JudgeVerdict, Prompt, Response
from carealign.review.queue import label_priority

#: Added to a routed exchange's queue priority (the queue's own priorities are at most 3).
LIVE_TRAFFIC_BOOST = 3.0
#: Who routes, in the audit log.
GATEWAY_ACTOR = Actor("gateway")
SOURCE = "gateway"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def review_prompt_text(exchange: Exchange) -> str:
    """What reviewers read as the prompt: the user's message, or the whole transcript of a longer conversation."""
    turns = [m for m in exchange.messages if m.get("role") in ("user", "assistant")]
    if len(turns) <= 1:
        return exchange.prompt
    return "\n\n".join(f"{m['role'].capitalize()}: {m.get('content', '')}" for m in exchange.messages)


def route_exchange(db: Session, exchange: Exchange, group: str) -> Item:
    """Queue ``exchange`` (already assessed) for ``group`` and link it to the item. Flushes; the caller commits."""
    g, _ = ensure_group(db, group, GATEWAY_ACTOR)
    text = review_prompt_text(exchange)
    key = f"gateway:{_sha(text)[:32]}"
    prompt = db.scalar(select(Prompt).where(Prompt.key == key))
    if prompt is None:
        prompt = Prompt(key=key, text=text, text_sha256=_sha(text), harm_level=exchange.harm_level, method=None)
        db.add(prompt)
        db.flush()
    answer = exchange.original_response if exchange.original_response is not None else exchange.response
    sha = _sha(answer)
    response = db.scalar(select(Response).where(Response.prompt_id == prompt.id, Response.text_sha256 == sha))
    if response is None:
        response = Response(
            prompt_id=prompt.id, text=answer, text_sha256=sha, source=SOURCE, model=exchange.policy[:255]
        )
        db.add(response)
        db.flush()
    if exchange.judge and exchange.verdict:
        verdict = db.scalar(
            select(JudgeVerdict).where(JudgeVerdict.response_id == response.id, JudgeVerdict.judge == exchange.judge)
        )
        if verdict is None:
            db.add(
                JudgeVerdict(
                    response_id=response.id,
                    judge=exchange.judge[:255],
                    verdict=exchange.verdict,
                    confidence=exchange.confidence,
                    source=SOURCE,
                )
            )
            db.flush()
    verdicts = list(db.scalars(select(JudgeVerdict).where(JudgeVerdict.response_id == response.id)))
    level = prompt.harm_level if prompt.harm_level is not None else exchange.harm_level
    prio = label_priority(level, verdicts)
    reasons = ["live traffic: " + ", ".join(exchange.flags or ["flagged"])]
    if exchange.harm_level is not None and exchange.harm_confidence is not None:
        reasons.append(f"estimated harm level {exchange.harm_level} (p={exchange.harm_confidence:.2f})")
    reasons.extend(prio.reasons)
    item_key = f"label:{response.id}"
    item = db.scalar(select(Item).where(Item.group_id == g.id, Item.key == item_key))
    if item is None:
        item = Item(
            group_id=g.id,
            key=item_key,
            kind=ItemKind.LABEL.value,
            prompt_id=prompt.id,
            response_id=response.id,
            required_reviews=g.reviews_required,
            status=ItemStatus.OPEN.value,
            priority=round(prio.score + LIVE_TRAFFIC_BOOST, 4),
            priority_reasons="; ".join(reasons)[:512],
        )
        db.add(item)
        db.flush()
        record(
            db,
            GATEWAY_ACTOR,
            "gateway.route",
            item_id=item.id,
            target=f"group:{g.name}",
            new={"exchange": exchange.request_id, "flags": list(exchange.flags or [])},
        )
    exchange.review_item_id = item.id
    return item
