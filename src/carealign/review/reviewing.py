"""Reviewing: verdicts and corrections on label items, choices on pair items, and adjudication.

Every change checks the item's ``version`` against the one the reviewer's page showed, writes an
audit entry in the same transaction, and commits before the request answers. Two concurrent
changes to one item cannot both succeed: the second finds the version moved and gets
:class:`~carealign.review.errors.Conflict` (HTTP 409) with the item's current state.

An item needs ``required_reviews`` reviews (1 or 2) from different reviewers. When they are in
and agree (same verdict, or same choice), the item is done; when they disagree it waits for an
adjudicator: an admin, or a member of the group who did not review it. Admins may also
overrule a decided item by adjudicating it. Reviews are blind: a reviewer does not see the
others' reviews of an item until it is decided (adjudicators and admins do).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError

from carealign.domain import DECIDED_VERDICTS, Verdict
from carealign.review.accounts import can_access_group
from carealign.review.audit import Actor, record
from carealign.review.errors import Conflict, Forbidden, InvalidInput, NotFound
from carealign.review.models import Choice, Decision, Item, ItemKind, ItemStatus, Response, Review, User, utcnow
from carealign.review.policies import group_policy
from carealign.review.wording import excluded_correction_warning

#: Longest corrected response accepted (characters): room for a correction started from a long response.
MAX_CORRECTION = 200_000
#: Longest note accepted (characters).
MAX_NOTE = 5_000


def load_item(db: Session, item_id: int, user: User, *, with_verdicts: bool = True) -> Item:
    """The item, if ``user`` may see it (admin, or member of its group).

    ``with_verdicts`` also loads the judges' verdicts (pages show them; saving a review does not need them).
    """
    options = [
        joinedload(Item.group),
        joinedload(Item.prompt),
        joinedload(Item.decided_by),
        selectinload(Item.reviews).joinedload(Review.reviewer),
    ]
    if with_verdicts:
        options += [
            joinedload(Item.response).selectinload(Response.verdicts),
            joinedload(Item.response_b).selectinload(Response.verdicts),
        ]
    else:
        options += [joinedload(Item.response), joinedload(Item.response_b)]
    item = db.scalar(select(Item).where(Item.id == item_id).options(*options))
    if item is None:
        raise NotFound(f"no item {item_id}")
    if not can_access_group(user, item.group_id):
        raise Forbidden(f"item {item_id} belongs to group {item.group.name!r}, which you are not a member of")
    return item


def item_state(item: Item) -> dict[str, Any]:
    """The item's current state as shown after a conflict (and recorded in the audit log)."""
    return {
        "version": item.version,
        "status": item.status,
        "reviews": len(item.reviews),
        "required_reviews": item.required_reviews,
        "final_verdict": item.final_verdict,
        "final_choice": item.final_choice,
        "final_response": item.final_response,
        "decision": item.decision,
        "decided_by": item.decided_by.name if item.decided_by else None,
    }


def _review_value(review: Review | None) -> dict[str, Any] | None:
    if review is None:
        return None
    return {
        "reviewer": review.reviewer.name,
        "verdict": review.verdict,
        "choice": review.choice,
        "corrected_response": review.corrected_response,
        "note": review.note,
    }


def parse_verdict(value: str | None) -> str:
    """A reviewer's verdict: Accept, Caution or Refuse (case-insensitive)."""
    try:
        v = Verdict.parse(value or "")
    except ValueError:
        v = Verdict.UNSCORED
    if v not in DECIDED_VERDICTS:
        if not value:
            raise InvalidInput("choose a verdict: the response complied, hedged or warned, or declined")
        raise InvalidInput(f"verdict {value!r}: expected Accept, Caution or Refuse")
    return v.value


def parse_choice(value: str | None) -> str:
    """A pairwise choice: ``a``, ``b`` or ``tie``."""
    try:
        return Choice(str(value or "").strip().lower()).value
    except ValueError:
        raise InvalidInput(f"choice {value!r}: expected a, b or tie") from None


def _clean_text(value: str | None, limit: int, what: str) -> str | None:
    if value is None:
        return None
    text = value.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise InvalidInput(f"{what} too long: {len(text):,} characters, at most {limit:,}")
    return text or None


def _check_version(item: Item, version: int) -> None:
    if version != item.version:
        who = item.decided_by.name if item.decided_by else None
        state = f"status {item.status}, {len(item.reviews)}/{item.required_reviews} reviews"
        if item.final_verdict or item.final_choice:
            state += f", decided {item.final_verdict or item.final_choice}" + (f" by {who}" if who else "")
        raise Conflict(
            f"item {item.id} changed since you opened it (you had version {version}, it is now at version "
            f"{item.version}: {state}); your input was not saved, check the current state and submit again",
            item_state(item),
        )


def _save(db: Session, item: Item, version: int, *, commit: bool) -> None:
    """Flush (and commit); a concurrent change to the item (stale version, duplicate review) becomes a Conflict."""
    try:
        db.flush()
        if commit:
            db.commit()
    except (StaleDataError, IntegrityError):
        db.rollback()
        fresh = db.get(Item, item.id, populate_existing=True)
        raise Conflict(
            f"item {item.id} was changed by someone else while you saved (you had version {version}); "
            "your input was not saved, reload and submit again",
            item_state(fresh) if fresh is not None else None,
        ) from None


def _settle(item: Item, user: User) -> None:
    """Set status and final value from the reviews in."""
    reviews = item.reviews
    values = [r.verdict if item.kind == ItemKind.LABEL.value else r.choice for r in reviews]
    item.final_note = None
    if len(reviews) < item.required_reviews:
        item.status = ItemStatus.OPEN.value
        item.final_verdict = item.final_choice = item.final_response = item.decision = None
        item.decided_by, item.decided_at = None, None
    elif len(set(values)) == 1:
        item.status = ItemStatus.DONE.value
        if item.kind == ItemKind.LABEL.value:
            item.final_verdict = values[0]
            item.final_response = next((r.corrected_response for r in reviews if r.corrected_response), None)
        else:
            item.final_choice = values[0]
        item.decision = (Decision.SINGLE if item.required_reviews == 1 else Decision.AGREED).value
        item.decided_by, item.decided_at = user, utcnow()
    else:
        item.status = ItemStatus.ADJUDICATE.value
        item.final_verdict = item.final_choice = item.final_response = item.decision = None
        item.decided_by, item.decided_at = None, None


def _review(
    db: Session,
    item_id: int,
    user: User,
    version: int,
    kind: ItemKind,
    fields: dict[str, Any],
) -> Item:
    item = load_item(db, item_id, user, with_verdicts=False)
    correction = fields.get("corrected_response")
    if correction is not None and correction == item.response.text.strip():
        fields["corrected_response"] = None  # no change is no correction
    if item.kind != kind.value:
        what = "a verdict" if kind is ItemKind.LABEL else "a choice"
        raise InvalidInput(f"item {item_id} is a {item.kind} item; it does not take {what}")
    mine = next((r for r in item.reviews if r.reviewer_id == user.id), None)
    if not (mine is None and item.status == ItemStatus.OPEN.value and len(item.reviews) < item.required_reviews):
        # Another reviewer's review of an item that still has room for this one is no conflict:
        # reviews are independent (and blind), so only a change this reviewer must see first is.
        _check_version(item, version)
    version = item.version
    if item.decision == Decision.ADJUDICATED.value:
        raise Conflict(f"item {item_id} was adjudicated; only an admin can change it now", item_state(item))
    if mine is None and len(item.reviews) >= item.required_reviews:
        raise Conflict(
            f"item {item_id} already has its {item.required_reviews} review(s)"
            + ("; it is waiting for adjudication" if item.status == ItemStatus.ADJUDICATE.value else ""),
            item_state(item),
        )
    old = {"review": _review_value(mine), "state": item_state(item)}
    now = utcnow()
    if mine is None:
        # blind: the group withholds the judges' verdicts, and this is the reviewer's first review
        mine = Review(item=item, reviewer=user, created_at=now, updated_at=now, blind=item.group.blind, **fields)
        db.add(mine)
        action = "review.create"
    else:
        for k, v in fields.items():
            setattr(mine, k, v)
        mine.updated_at = now
        action = "review.update"
    _settle(item, user)
    item.updated_at = now
    if item.claimed_by_id == user.id:
        item.claimed_by_id, item.claimed_until = None, None
    new = {"review": _review_value(mine), "state": {**item_state(item), "version": version + 1}}
    record(
        db, Actor.of(user), action, item_id=item.id, target=f"item:{item.id}", old=old, new=new, note=fields.get("note")
    )
    _save(db, item, version, commit=True)  # one flush: the version check, the changes and the audit entry
    return item


def submit_review(
    db: Session,
    item_id: int,
    user: User,
    *,
    verdict: str,
    version: int,
    corrected_response: str | None = None,
    note: str | None = None,
) -> Item:
    """Set (or change) ``user``'s verdict on a label item, with an optional corrected response and note.

    A corrected response equal to the original is ignored. Commits.
    """
    v = parse_verdict(verdict)
    correction = _clean_text(corrected_response, MAX_CORRECTION, "corrected response")
    fields = {"verdict": v, "corrected_response": correction, "note": _clean_text(note, MAX_NOTE, "note")}
    return _review(db, item_id, user, version, ItemKind.LABEL, fields)


def submit_choice(db: Session, item_id: int, user: User, *, choice: str, version: int, note: str | None = None) -> Item:
    """Record which of a pair item's two responses ``user`` finds better (``a``, ``b`` or ``tie``). Commits."""
    fields = {"choice": parse_choice(choice), "note": _clean_text(note, MAX_NOTE, "note")}
    return _review(db, item_id, user, version, ItemKind.PAIR, fields)


def other_responses(db: Session, item: Item) -> list[Response]:
    """The other responses to the item's prompt that are up for review in the same group (other
    samples, other models), with their judges' verdicts: what the reviewer compares the response with."""
    shown = {item.response_id, item.response_b_id}
    in_group = select(Item.response_id).where(Item.group_id == item.group_id, Item.prompt_id == item.prompt_id)
    rows = db.scalars(
        select(Response)
        .where(Response.prompt_id == item.prompt_id, Response.id.in_(in_group))
        .options(selectinload(Response.verdicts))
        .order_by(Response.source, Response.sample, Response.id)
    ).all()
    return [r for r in rows if r.id not in shown]


def can_adjudicate(user: User, item: Item) -> bool:
    """Admins always (they may overrule decided items); group members who did not review the item
    while it waits for adjudication."""
    if user.is_admin:
        return item.status in (ItemStatus.ADJUDICATE.value, ItemStatus.DONE.value)
    return (
        item.status == ItemStatus.ADJUDICATE.value
        and can_access_group(user, item.group_id)
        and all(r.reviewer_id != user.id for r in item.reviews)
    )


def adjudicate(
    db: Session,
    item_id: int,
    user: User,
    *,
    version: int,
    verdict: str | None = None,
    choice: str | None = None,
    corrected_response: str | None = None,
    note: str | None = None,
) -> Item:
    """Decide an item whose reviewers disagree (or, for an admin, overrule a decided one). Commits."""
    item = load_item(db, item_id, user)
    if item.status == ItemStatus.OPEN.value:
        raise Conflict(
            f"item {item_id} is still waiting for reviews ({len(item.reviews)}/{item.required_reviews})",
            item_state(item),
        )
    if not can_adjudicate(user, item):
        if any(r.reviewer_id == user.id for r in item.reviews):
            raise Forbidden(f"you reviewed item {item_id}; another member of the group or an admin must adjudicate it")
        raise Forbidden(f"only an admin can change item {item_id} once it is decided")
    _check_version(item, version)
    old = {"state": item_state(item), "reviews": [_review_value(r) for r in item.reviews]}
    if item.kind == ItemKind.LABEL.value:
        item.final_verdict = parse_verdict(verdict)
        correction = _clean_text(corrected_response, MAX_CORRECTION, "corrected response")
        item.final_response = None if correction == item.response.text.strip() else correction
        item.final_choice = None
    else:
        if corrected_response:
            raise InvalidInput("a pair item takes a choice, not a corrected response")
        item.final_choice = parse_choice(choice)
    now = utcnow()
    item.final_note = _clean_text(note, MAX_NOTE, "note")
    item.status = ItemStatus.DONE.value
    item.decision = Decision.ADJUDICATED.value
    item.decided_by, item.decided_at, item.updated_at = user, now, now
    record(
        db,
        Actor.of(user),
        "item.adjudicate",
        item_id=item.id,
        target=f"item:{item.id}",
        old=old,
        new={"state": {**item_state(item), "version": version + 1}},
        note=item.final_note,
    )
    _save(db, item, version, commit=True)  # one flush: the version check, the changes and the audit entry
    return item


def correction_warning(item: Item, user: User) -> str | None:
    """The warning for ``user``'s latest change to a label item when its correction would be left
    out of the DPO export (see :func:`carealign.review.wording.excluded_correction_warning`)."""
    if item.kind != ItemKind.LABEL.value:
        return None
    if item.decision == Decision.ADJUDICATED.value and item.decided_by_id == user.id:
        verdict, correction = item.final_verdict, item.final_response
    else:
        mine = next((r for r in item.reviews if r.reviewer_id == user.id), None)
        if mine is None:
            return None
        verdict, correction = mine.verdict, mine.corrected_response
    return excluded_correction_warning(group_policy(item.group), item.prompt.harm_level, verdict, correction)
