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

from sqlalchemy import Select, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, joinedload, selectinload

from carealign.domain import Verdict
from carealign.review.errors import Conflict
from carealign.review.models import Item, ItemStatus, JudgeVerdict, Prompt, Response, Review, ReviewSkip, User, utcnow

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


@dataclass(frozen=True)
class QueueFilter:
    """What a reviewer narrowed the queue to: harm level, principle, source (all optional)."""

    harm_level: int | None = None
    principle: str | None = None
    source: str | None = None

    def __bool__(self) -> bool:
        return self.harm_level is not None or bool(self.principle) or bool(self.source)

    def params(self) -> dict[str, str]:
        """The filter as query or form parameters (only those set)."""
        out = {"harm": "" if self.harm_level is None else str(self.harm_level)}
        out.update(principle=self.principle or "", source=self.source or "")
        return {k: v for k, v in out.items() if v}

    def where(self, entity: Any = Item) -> list[Any]:
        """SQL conditions on ``entity`` (Item or an alias of it)."""
        conds: list[Any] = []
        if self.harm_level is not None or self.principle:
            prompt = select(Prompt.id).where(Prompt.id == entity.prompt_id)
            if self.harm_level is not None:
                prompt = prompt.where(Prompt.harm_level == self.harm_level)
            if self.principle:
                prompt = prompt.where(Prompt.principle == self.principle)
            conds.append(prompt.exists())
        if self.source:
            from_source = [
                select(Response.id).where(Response.id == column, Response.source == self.source).exists()
                for column in (entity.response_id, entity.response_b_id)
            ]
            conds.append(or_(*from_source))
        return conds


NO_FILTER = QueueFilter()


def filter_options(db: Session, group_ids: Sequence[int]) -> dict[str, list[Any]]:
    """The harm levels, principles and sources present in these groups' items (for the filter menus)."""
    if not group_ids:
        return {"harm_levels": [], "principles": [], "sources": []}
    in_groups = Item.group_id.in_(list(group_ids))
    prompts = select(Prompt).join(Item, Item.prompt_id == Prompt.id).where(in_groups)
    levels = db.scalars(prompts.with_only_columns(Prompt.harm_level).distinct()).all()
    principles = db.scalars(prompts.with_only_columns(Prompt.principle).distinct()).all()
    sources = db.scalars(
        select(Response.source).join(Item, Item.response_id == Response.id).where(in_groups).distinct()
    ).all()
    return {
        "harm_levels": sorted(lv for lv in levels if lv is not None),
        "principles": sorted(p for p in principles if p),
        "sources": sorted(sources),
    }


def _skipped_by(user: User, entity: Any = Item):  # type: ignore[no-untyped-def]
    return exists().where(ReviewSkip.item_id == entity.id, ReviewSkip.user_id == user.id)


def _reviewed_by(user: User, entity: Any = Item):  # type: ignore[no-untyped-def]
    return exists().where(Review.item_id == entity.id, Review.reviewer_id == user.id)


def _free(user: User, now: datetime, entity: Any = Item):  # type: ignore[no-untyped-def]
    return or_(entity.claimed_by_id.is_(None), entity.claimed_by_id == user.id, entity.claimed_until < now)


def queue_query(
    user: User, group_ids: Sequence[int], tab: str = "review", flt: QueueFilter = NO_FILTER
) -> Select[Item]:
    """Items of ``group_ids`` in a queue tab (narrowed by ``flt``), in the order a reviewer should take them.

    ``review``: open items this user has not reviewed and nobody else holds, the ones they
    skipped last; ``adjudicate``: items whose reviewers disagree (a reviewer never adjudicates an
    item they reviewed; admins see all); ``done``: decided items, latest first.
    """
    if tab not in TABS:
        raise ValueError(f"unknown queue tab {tab!r}; expected one of {', '.join(TABS)}")
    q = (
        select(Item)
        .where(Item.group_id.in_(list(group_ids)), *flt.where())
        .options(joinedload(Item.group), joinedload(Item.prompt), selectinload(Item.reviews))
    )
    if tab == "review":
        now = utcnow()
        q = q.where(Item.status == ItemStatus.OPEN.value, ~_reviewed_by(user), _free(user, now)).order_by(
            _skipped_by(user), Item.priority.desc(), Item.id
        )
    elif tab == "adjudicate":
        q = q.where(Item.status == ItemStatus.ADJUDICATE.value)
        if not user.is_admin:
            q = q.where(~_reviewed_by(user))
        q = q.order_by(Item.priority.desc(), Item.id)
    else:
        q = q.where(Item.status == ItemStatus.DONE.value).order_by(Item.decided_at.desc(), Item.id.desc())
    return q


def queue_count(db: Session, user: User, group_ids: Sequence[int], tab: str, flt: QueueFilter = NO_FILTER) -> int:
    """How many items a queue tab holds."""
    sub = queue_query(user, group_ids, tab, flt).order_by(None).with_only_columns(Item.id).subquery()
    return db.scalar(select(func.count()).select_from(sub)) or 0


@dataclass(frozen=True)
class Progress:
    """A reviewer's progress through a queue: items they reviewed, and items left for them."""

    reviewed: int
    left: int

    @property
    def total(self) -> int:
        return self.reviewed + self.left

    @property
    def text(self) -> str:
        return f"{self.reviewed} of {self.total} reviewed, {self.left} left"


def progress(db: Session, user: User, group_ids: Sequence[int], flt: QueueFilter = NO_FILTER) -> Progress:
    """How many items of these groups (narrowed by ``flt``) ``user`` reviewed, and how many are left
    for them (open, not reviewed by them; including items others hold for now)."""
    if not group_ids:
        return Progress(0, 0)
    base = select(func.count(Item.id)).where(Item.group_id.in_(list(group_ids)), *flt.where())
    reviewed = db.scalar(base.where(_reviewed_by(user))) or 0
    left = db.scalar(base.where(Item.status == ItemStatus.OPEN.value, ~_reviewed_by(user))) or 0
    return Progress(int(reviewed), int(left))


def skip(db: Session, item: Item, user: User) -> None:
    """``user`` skips an item: their reservation of it ends and "next" offers it to them again only
    when nothing else is left. It does not change the item's version. Commits."""
    if item.status != ItemStatus.OPEN.value:
        raise Conflict(f"item {item.id} is not waiting for reviews (status {item.status}); nothing to skip")
    db.execute(delete(ReviewSkip).where(ReviewSkip.item_id == item.id, ReviewSkip.user_id == user.id))
    db.add(ReviewSkip(item_id=item.id, user_id=user.id, at=utcnow()))
    release(db, item.id, user)


def release(db: Session, item_id: int, user: User) -> None:
    """End ``user``'s reservation of an item (if they hold it), so that others can take it. Commits."""
    db.execute(
        update(Item)
        .where(Item.id == item_id, Item.claimed_by_id == user.id)
        .values(claimed_by_id=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    db.commit()


def claim_next(db: Session, user: User, group_ids: Sequence[int], flt: QueueFilter = NO_FILTER) -> Item | None:
    """Reserve and return the next item for ``user`` to review (see :func:`claim_next_id`). Commits."""
    item_id = claim_next_id(db, user, group_ids, flt)
    return None if item_id is None else db.get(Item, item_id, populate_existing=True)


def claim_next_id(db: Session, user: User, group_ids: Sequence[int], flt: QueueFilter = NO_FILTER) -> int | None:
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
        queue_query(user, group_ids, "review", flt)
        .where(Item.claimed_by_id == user.id, Item.claimed_until >= now, ~_skipped_by(user))
        .with_only_columns(Item.id)
        .order_by(None)
        .limit(1)
    )
    if mine is not None:
        return int(mine)
    cand = aliased(Item)
    open_for_user = (
        cand.group_id.in_(list(group_ids)),
        cand.status == ItemStatus.OPEN.value,
        ~_reviewed_by(user, cand),
        _free(user, now, cand),
        *flt.where(cand),
    )
    # Items the user has not skipped first (in the queue index's order), skipped ones only when
    # nothing else is left: two index-ordered picks rather than one sort over every open item.
    unskipped = select(cand.id).where(*open_for_user, ~_skipped_by(user, cand))
    if db.scalar(unskipped.limit(1)) is None:
        unskipped = select(cand.id).where(*open_for_user)
    candidates = unskipped.order_by(cand.priority.desc(), cand.id).limit(1)
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
