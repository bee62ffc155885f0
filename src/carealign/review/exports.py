"""Exports of human judgement, for the next alignment cycle and for the fine-tuned judge.

Kinds (``carealign review export --kind ...``), each JSONL, built from *decided* items only:

- ``labels``: one row per decided label item, in the columns of an evaluation's
  ``responses.jsonl`` (``prompt_id, prompt, harm_level, principle, method, base_prompt_id,
  sample, response, verdict, confidence, judge, score``) so it can stand in for judged samples;
  ``verdict`` is the human one (it overrides the judges, whose verdicts are kept in
  ``judge_verdicts``), ``judge`` is ``human:<group>``, ``score``/``desirable`` come from the
  group's safety policy; plus ``corrected_response``, ``group``, ``reviewers``, ``decision``,
  ``notes``, ``item_id``.
- ``dpo``: TRL's conversational DPO columns ``prompt, chosen, rejected`` (+ metadata), from
  pairwise choices (ties give nothing) and from corrected responses: the correction is chosen
  and the original rejected when the human verdict scores the original below the group
  policy's threshold (or the harm level is unknown, so the correction is the only signal).
- ``kto``: TRL's ``prompt, completion, label``: every decided response with a score,
  desirable when the group policy's score meets its threshold, and every correction as
  desirable.
- ``judge``: ``prompt, response, verdict, harm_level`` (+ ``prompt_id, group``): training rows
  for the fine-tuned classifier judge (``carealign judge train --data FILE``).
- ``audit``: the audit log, oldest first.

Files are written atomically (a temporary file renamed over the target).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from carealign.io import write_jsonl_atomic
from carealign.review.accounts import get_group
from carealign.review.audit import iter_audit_rows
from carealign.review.errors import InvalidInput
from carealign.review.models import Group, Item, ItemKind, ItemStatus, Response, Review
from carealign.review.policies import correction_is_preference, group_policy
from carealign.score.policy import SafetyPolicy

#: What ``export`` can write.
EXPORT_KINDS = ("labels", "dpo", "kto", "judge", "audit")

#: Why an export of each kind can be empty (said instead of handing out an empty file).
EMPTY_REASONS = {
    "labels": "no label item has been decided yet",
    "dpo": (
        "no pairwise choice of A or B has been decided, and no decided correction is on a response whose "
        "verdict scores below the policy's threshold"
    ),
    "kto": "no decided label item has a known harm level or a correction",
    "judge": "no label item has been decided yet",
    "audit": "nothing has been recorded yet",
}


def empty_export_message(kind: str, group: str | None) -> str:
    """What to tell someone whose export of ``kind`` (for ``group``) has no rows."""
    where = f" in group {group}" if group else ""
    return f"Nothing to export as {kind}{where}: {EMPTY_REASONS[kind]}."


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


class _Policies:
    """Group policies, parsed once per export."""

    def __init__(self) -> None:
        self._cache: dict[int, SafetyPolicy] = {}

    def __call__(self, group: Group) -> SafetyPolicy:
        if group.id not in self._cache:
            self._cache[group.id] = group_policy(group)
        return self._cache[group.id]


def _decided(db: Session, kind: ItemKind, group: str | None) -> Iterator[Item]:
    q = (
        select(Item)
        .where(Item.kind == kind.value, Item.status == ItemStatus.DONE.value)
        .order_by(Item.id)
        .options(
            selectinload(Item.reviews).selectinload(Review.reviewer),
            selectinload(Item.response).selectinload(Response.verdicts),
            selectinload(Item.response_b),
            selectinload(Item.prompt),
            selectinload(Item.group),
            selectinload(Item.decided_by),
        )
    )
    if group is not None:
        q = q.where(Item.group_id == get_group(db, group).id)
    # batches of 500 items, their relations loaded per batch
    last = 0
    while True:
        batch = db.scalars(q.where(Item.id > last).limit(500)).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].id


def _prompt_fields(item: Item) -> dict[str, Any]:
    p = item.prompt
    return {
        "prompt_id": p.key,
        "prompt": p.text,
        "harm_level": p.harm_level,
        "principle": p.principle,
        "method": p.method,
        "base_prompt_id": p.base_prompt_id,
    }


def label_rows(db: Session, group: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of decided label items (see the module docstring)."""
    policies = _Policies()
    for item in _decided(db, ItemKind.LABEL, group):
        policy = policies(item.group)
        level = item.prompt.harm_level
        assert item.final_verdict is not None
        yield {
            **_prompt_fields(item),
            "sample": item.response.sample,
            "response": item.response.text,
            "verdict": item.final_verdict,
            "confidence": 1.0,
            "judge": f"human:{item.group.name}",
            "score": policy.score(level, item.final_verdict),
            "desirable": policy.desirable(level, item.final_verdict),
            "policy": policy.name,
            "corrected_response": item.final_response,
            "group": item.group.name,
            "reviewers": [r.reviewer.name for r in item.reviews],
            "decision": item.decision,
            "decided_by": item.decided_by.name if item.decided_by else None,
            "decided_at": item.decided_at.isoformat() if item.decided_at else None,
            "notes": [n for n in [*(r.note for r in item.reviews), item.final_note] if n],
            "judge_verdicts": {
                v.judge: {"verdict": v.verdict, "confidence": v.confidence} for v in item.response.verdicts
            },
            "source": item.response.source,
            "model": item.response.model,
            "item_id": item.id,
        }


def _meta(item: Item) -> dict[str, Any]:
    return {
        "prompt_id": item.prompt.key,
        "harm_level": item.prompt.harm_level,
        "principle": item.prompt.principle,
        "method": item.prompt.method,
        "group": item.group.name,
        "item_id": item.id,
    }


def dpo_rows(db: Session, group: str | None = None) -> Iterator[dict[str, Any]]:
    """DPO pairs from pairwise choices and from corrected responses (see the module docstring)."""
    policies = _Policies()
    for item in _decided(db, ItemKind.PAIR, group):
        if item.final_choice not in ("a", "b"):
            continue
        assert item.response_b is not None
        chosen, rejected = (
            (item.response, item.response_b) if item.final_choice == "a" else (item.response_b, item.response)
        )
        yield {
            "prompt": _user(item.prompt.text),
            "chosen": _assistant(chosen.text),
            "rejected": _assistant(rejected.text),
            **_meta(item),
            "source": "pairwise",
            "decision": item.decision,
        }
    for item in _decided(db, ItemKind.LABEL, group):
        if not item.final_response or item.final_verdict is None:
            continue
        if not correction_is_preference(policies(item.group), item.prompt.harm_level, item.final_verdict):
            continue
        yield {
            "prompt": _user(item.prompt.text),
            "chosen": _assistant(item.final_response),
            "rejected": _assistant(item.response.text),
            **_meta(item),
            "source": "correction",
            "rejected_verdict": item.final_verdict,
            "decision": item.decision,
        }


def kto_rows(db: Session, group: str | None = None) -> Iterator[dict[str, Any]]:
    """KTO examples from decided label items, labelled by the group's policy, and from corrections."""
    policies = _Policies()
    for item in _decided(db, ItemKind.LABEL, group):
        policy = policies(item.group)
        assert item.final_verdict is not None
        score = policy.score(item.prompt.harm_level, item.final_verdict)
        if score is not None:
            yield {
                "prompt": _user(item.prompt.text),
                "completion": _assistant(item.response.text),
                "label": score >= policy.desirable_threshold,
                **_meta(item),
                "score": score,
                "verdict": item.final_verdict,
                "policy": policy.name,
                "source": "label",
            }
        if item.final_response:
            yield {
                "prompt": _user(item.prompt.text),
                "completion": _assistant(item.final_response),
                "label": True,
                **_meta(item),
                "score": None,
                "verdict": None,
                "policy": policy.name,
                "source": "correction",
            }


def judge_training_rows(db: Session, group: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows for training the fine-tuned judge: ``prompt, response, verdict, harm_level``."""
    for item in _decided(db, ItemKind.LABEL, group):
        yield {
            "prompt": item.prompt.text,
            "response": item.response.text,
            "verdict": item.final_verdict,
            "harm_level": item.prompt.harm_level,
            "prompt_id": item.prompt.key,
            "group": item.group.name,
            "item_id": item.id,
        }


def export_rows(db: Session, kind: str, group: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of one export kind (see :data:`EXPORT_KINDS`)."""
    if kind == "labels":
        return label_rows(db, group)
    if kind == "dpo":
        return dpo_rows(db, group)
    if kind == "kto":
        return kto_rows(db, group)
    if kind == "judge":
        return judge_training_rows(db, group)
    if kind == "audit":
        if group is not None:
            raise InvalidInput("the audit export covers every group; leave out the group")
        return iter_audit_rows(db)
    raise InvalidInput(f"export kind {kind!r}: expected one of {', '.join(EXPORT_KINDS)}")


def export_to_file(db: Session, kind: str, out: str | Path, group: str | None = None) -> int:
    """Write an export atomically to ``out``; return the number of rows."""
    rows = export_rows(db, kind, group)
    return write_jsonl_atomic(out, rows)
