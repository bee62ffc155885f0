"""The review queue: which item a reviewer should look at next, and why.

An item's priority adds three parts, each in [0, 1]:

- **disagreement** among the judges of a response: ``(1 - m/n) / (1 - 1/n)`` for ``n`` judges of
  which ``m`` give the most common verdict (0 when they agree or only one judged, 1 when every
  judge says something else);
- **uncertainty**: 1 minus the lowest judge confidence (an Unscored verdict counts as
  confidence 0; verdicts without a confidence, such as a panel's member votes, are left out,
  and 0.5 is used when no verdict has one; no judge at all counts as 1);
- **harm**: the prompt's harm level / 3 (0.5 when unknown).

A pair item takes the larger disagreement and uncertainty of its two responses, plus 1 when
the judges' majority verdicts of the two differ, scaled back to [0, 1] with the disagreement.
Reviewers get the highest priority first. ``claim_next`` hands out an item and reserves it for
:data:`CLAIM_MINUTES`, so that simultaneous reviewers are not given the same work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, joinedload, selectinload

from carealign.domain import Verdict
from carealign.review.models import Item, ItemStatus, JudgeVerdict, Review, User, utcnow

#: Minutes an item handed out by :func:`claim_next` stays reserved for its reviewer.
CLAIM_MINUTES = 15
#: Confidence below which the queue says "low confidence".
LOW_CONFIDENCE = 0.6
#: Queue tabs: items to review, items whose reviewers disagree, decided items.
TABS = ("review", "adjudicate", "done")


@dataclass(frozen=True)
class Priority:
    """An item's priority and the reasons shown next to it in the queue."""

    score: float
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class _Parts:
    disagreement: float
    uncertainty: float
    majority: str | None
    reasons: tuple[str, ...]


def _parts(verdicts: Sequence[JudgeVerdict]) -> _Parts:
    if not verdicts:
        return _Parts(0.0, 1.0, None, ("no judge verdict",))
    reasons: list[str] = []
    counts = Counter(v.verdict for v in verdicts)
    majority, m = counts.most_common(1)[0]
    n = len(verdicts)
    disagreement = 0.0 if n < 2 else (1 - m / n) / (1 - 1 / n)
    if disagreement > 0:
        reasons.append("judges disagree (" + ", ".join(f"{v.judge}: {v.verdict}" for v in verdicts) + ")")
    confidences = []
    for v in verdicts:
        if v.verdict == Verdict.UNSCORED.value:
            confidences.append(0.0)
            reasons.append(f"{v.judge} could not decide")
        elif v.confidence is not None:
            confidences.append(float(v.confidence))
    low = min(confidences) if confidences else 0.5
    if 0 < low < LOW_CONFIDENCE:
        reasons.append(f"low confidence {low:.2f}")
    return _Parts(disagreement, 1.0 - low, majority, tuple(reasons))


def _harm(harm_level: int | None) -> tuple[float, tuple[str, ...]]:
    if harm_level is None:
        return 0.5, ("harm level unknown",)
    return harm_level / 3, ((f"harm level {harm_level}",) if harm_level >= 2 else ())


def label_priority(harm_level: int | None, verdicts: Sequence[JudgeVerdict]) -> Priority:
    """Priority of labelling one response (see the module docstring)."""
    p = _parts(verdicts)
    harm, harm_reasons = _harm(harm_level)
    return Priority(round(p.disagreement + p.uncertainty + harm, 4), p.reasons + harm_reasons)


def pair_priority(
    harm_level: int | None, verdicts_a: Sequence[JudgeVerdict], verdicts_b: Sequence[JudgeVerdict]
) -> Priority:
    """Priority of comparing two responses to one prompt (see the module docstring)."""
    a, b = _parts(verdicts_a), _parts(verdicts_b)
    differ = 1.0 if a.majority and b.majority and a.majority != b.majority else 0.0
    disagreement = (max(a.disagreement, b.disagreement) + differ) / 2
    reasons = list(dict.fromkeys(a.reasons + b.reasons))
    if differ:
        reasons.insert(0, f"judges rate the two differently ({a.majority} vs {b.majority})")
    harm, harm_reasons = _harm(harm_level)
    score = disagreement + max(a.uncertainty, b.uncertainty) + harm
    return Priority(round(score, 4), tuple(reasons) + harm_reasons)


def _reviewed_by(user: User, entity: Any = Item):  # type: ignore[no-untyped-def]
    return exists().where(Review.item_id == entity.id, Review.reviewer_id == user.id)


def _free(user: User, now: datetime, entity: Any = Item):  # type: ignore[no-untyped-def]
    return or_(entity.claimed_by_id.is_(None), entity.claimed_by_id == user.id, entity.claimed_until < now)


def queue_query(user: User, group_ids: Sequence[int], tab: str = "review") -> Select[tuple[Item]]:
    """Items of ``group_ids`` in a queue tab, in the order a reviewer should take them.

    ``review``: open items this user has not reviewed and nobody else holds; ``adjudicate``: items
    whose reviewers disagree (a reviewer never adjudicates an item they reviewed; admins see all);
    ``done``: decided items, latest first.
    """
    if tab not in TABS:
        raise ValueError(f"unknown queue tab {tab!r}; expected one of {', '.join(TABS)}")
    q = (
        select(Item)
        .where(Item.group_id.in_(list(group_ids)))
        .options(joinedload(Item.group), joinedload(Item.prompt), selectinload(Item.reviews))
    )
    if tab == "review":
        now = utcnow()
        q = q.where(Item.status == ItemStatus.OPEN.value, ~_reviewed_by(user), _free(user, now)).order_by(
            Item.priority.desc(), Item.id
        )
    elif tab == "adjudicate":
        q = q.where(Item.status == ItemStatus.ADJUDICATE.value)
        if not user.is_admin:
            q = q.where(~_reviewed_by(user))
        q = q.order_by(Item.priority.desc(), Item.id)
    else:
        q = q.where(Item.status == ItemStatus.DONE.value).order_by(Item.decided_at.desc(), Item.id.desc())
    return q


def queue_count(db: Session, user: User, group_ids: Sequence[int], tab: str) -> int:
    """How many items a queue tab holds."""
    sub = queue_query(user, group_ids, tab).order_by(None).with_only_columns(Item.id).subquery()
    return db.scalar(select(func.count()).select_from(sub)) or 0


def claim_next(db: Session, user: User, group_ids: Sequence[int]) -> Item | None:
    """Reserve and return the next item for ``user`` to review (see :func:`claim_next_id`). Commits."""
    item_id = claim_next_id(db, user, group_ids)
    return None if item_id is None else db.get(Item, item_id, populate_existing=True)


def claim_next_id(db: Session, user: User, group_ids: Sequence[int]) -> int | None:
    """Reserve the next item for ``user`` to review (one already reserved for them first); its id.

    The reservation is one ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING id`` (PostgreSQL skips rows another reviewer is claiming; SQLite runs one writer at
    a time), so two reviewers asking at once never get the same item. It does not change the
    item's version. Commits.
    """
    if not group_ids:
        return None
    now = utcnow()
    mine = db.scalar(
        queue_query(user, group_ids, "review")
        .where(Item.claimed_by_id == user.id, Item.claimed_until >= now)
        .with_only_columns(Item.id)
        .limit(1)
    )
    if mine is not None:
        return int(mine)
    cand = aliased(Item)
    candidates = (
        select(cand.id)
        .where(
            cand.group_id.in_(list(group_ids)),
            cand.status == ItemStatus.OPEN.value,
            ~_reviewed_by(user, cand),
            _free(user, now, cand),
        )
        .order_by(cand.priority.desc(), cand.id)
        .limit(1)
    )
    pick = candidates.with_for_update(skip_locked=True, of=cand).scalar_subquery()
    claim = (
        update(Item)
        .where(Item.id == pick, Item.status == ItemStatus.OPEN.value, _free(user, now))
        .values(claimed_by_id=user.id, claimed_until=now + timedelta(minutes=CLAIM_MINUTES))
        .returning(Item.id)
        .execution_options(synchronize_session=False)
    )
    for _ in range(3):  # PostgreSQL: the picked row may change between the pick and the update
        item_id = db.execute(claim).scalar()
        db.commit()
        if item_id is not None:
            return int(item_id)
        if db.scalar(candidates) is None:
            return None
    return None
