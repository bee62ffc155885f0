"""Agreement between reviewers of a group (and between its decisions, and its blind reviews, and each judge).

For items reviewed twice, the share of items whose two reviews agree and Fleiss' kappa (with two
ratings per item it equals Scott's pi: agreement corrected for the agreement expected from the
overall distribution of answers). Reported separately for verdicts (label items) and choices
(pair items).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from carealign.review.models import Group, Item, ItemKind, ItemStatus, JudgeVerdict, Response, Review


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa of items each rated by the same number (>= 2) of raters.

    ``None`` when it is undefined (no items, or every rating in the same category).
    """
    if not ratings:
        return None
    n = len(ratings[0])
    if n < 2 or any(len(r) != n for r in ratings):
        raise ValueError("every item needs the same number (>= 2) of ratings")
    totals: Counter[str] = Counter()
    p_items = []
    for r in ratings:
        counts = Counter(r)
        totals.update(counts)
        p_items.append((sum(c * c for c in counts.values()) - n) / (n * (n - 1)))
    p_bar = sum(p_items) / len(p_items)
    n_all = len(ratings) * n
    p_e = sum((c / n_all) ** 2 for c in totals.values())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1 - p_e)


@dataclass
class Agreement:
    """Agreement of items reviewed twice."""

    items: int = 0
    agree: int = 0
    rate: float | None = None
    kappa: float | None = None

    @classmethod
    def of(cls, ratings: Sequence[Sequence[str]]) -> Agreement:
        agree = sum(1 for r in ratings if len(set(r)) == 1)
        return cls(
            items=len(ratings),
            agree=agree,
            rate=agree / len(ratings) if ratings else None,
            kappa=fleiss_kappa(ratings),
        )


@dataclass
class JudgeAgreement:
    """How often a judge's verdict matches the group's decided verdict."""

    judge: str
    items: int
    agree: int

    @property
    def rate(self) -> float:
        return self.agree / self.items if self.items else 0.0


@dataclass
class GroupStats:
    """Counts and agreement figures of one group."""

    group: str
    blind: bool = False
    items: dict[str, int] = field(default_factory=dict)
    labels: Agreement = field(default_factory=Agreement)
    pairs: Agreement = field(default_factory=Agreement)
    adjudicated: int = 0
    judges: list[JudgeAgreement] = field(default_factory=list)
    #: Each judge against the reviews given blind (without seeing any judge): labels the judges
    #: could not have anchored, so the fairest check of a judge.
    blind_judges: list[JudgeAgreement] = field(default_factory=list)
    blind_reviews: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("judges", "blind_judges"):
            out[key] = [
                {"judge": j.judge, "items": j.items, "agree": j.agree, "rate": j.rate} for j in getattr(self, key)
            ]
        return out


def group_stats(db: Session, group: Group) -> GroupStats:
    """Queue counts, reviewer agreement and judge-vs-human agreement of a group."""
    stats = GroupStats(group=group.name, blind=bool(group.blind))
    counts = db.execute(
        select(Item.kind, Item.status, func.count()).where(Item.group_id == group.id).group_by(Item.kind, Item.status)
    ).all()
    for kind, status, n in counts:
        stats.items[f"{kind}_{status}"] = n
    for s in ItemStatus:
        stats.items[s.value] = sum(n for _, status, n in counts if status == s.value)
    stats.adjudicated = (
        db.scalar(select(func.count()).where(Item.group_id == group.id, Item.decision == "adjudicated")) or 0
    )
    twice = db.scalars(
        select(Item)
        .where(Item.group_id == group.id, select(func.count()).where(Review.item_id == Item.id).scalar_subquery() >= 2)
        .options(selectinload(Item.reviews))
    ).all()
    ratings: dict[str, list[list[str]]] = defaultdict(list)
    for item in twice:
        first_two = sorted(item.reviews, key=lambda r: r.id)[:2]
        values = [r.verdict if item.kind == ItemKind.LABEL.value else r.choice for r in first_two]
        ratings[item.kind].append([v for v in values if v is not None])
    stats.labels = Agreement.of([r for r in ratings[ItemKind.LABEL.value] if len(r) == 2])
    stats.pairs = Agreement.of([r for r in ratings[ItemKind.PAIR.value] if len(r) == 2])
    rows = db.execute(
        select(JudgeVerdict.judge, JudgeVerdict.verdict, Item.final_verdict)
        .join(Response, Response.id == JudgeVerdict.response_id)
        .join(Item, Item.response_id == Response.id)
        .where(Item.group_id == group.id, Item.kind == ItemKind.LABEL.value, Item.status == ItemStatus.DONE.value)
    ).all()
    per_judge: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for judge, verdict, final in rows:
        per_judge[judge][0] += 1
        per_judge[judge][1] += int(verdict == final)
    stats.judges = [JudgeAgreement(j, n, a) for j, (n, a) in sorted(per_judge.items())]
    stats.blind_reviews, stats.blind_judges = _blind_agreement(db, group)
    return stats


def _blind_agreement(db: Session, group: Group) -> tuple[int, list[JudgeAgreement]]:
    """How many label reviews of the group were given blind, and each judge's agreement with them."""
    rows = db.execute(
        select(Review.id, JudgeVerdict.judge, JudgeVerdict.verdict, Review.verdict)
        .join(Item, Item.id == Review.item_id)
        .join(JudgeVerdict, JudgeVerdict.response_id == Item.response_id)
        .where(
            Item.group_id == group.id,
            Item.kind == ItemKind.LABEL.value,
            Review.blind.is_(True),
            Review.verdict.is_not(None),
        )
    ).all()
    reviews = db.scalar(
        select(func.count(Review.id))
        .join(Item, Item.id == Review.item_id)
        .where(Item.group_id == group.id, Item.kind == ItemKind.LABEL.value, Review.blind.is_(True))
    )
    per_judge: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _review_id, judge, verdict, human in rows:
        per_judge[judge][0] += 1
        per_judge[judge][1] += int(verdict == human)
    return int(reviews or 0), [JudgeAgreement(j, n, a) for j, (n, a) in sorted(per_judge.items())]
