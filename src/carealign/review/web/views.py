"""Items, users and groups as plain dicts: the same shapes feed the pages and the JSON API."""

from __future__ import annotations

from typing import Any

from carealign.domain import HARM_LEVELS, PRINCIPLES
from carealign.review.models import Group, Item, ItemStatus, Response, Review, User
from carealign.review.reviewing import can_adjudicate


def response_view(resp: Response) -> dict[str, Any]:
    return {
        "id": resp.id,
        "text": resp.text,
        "source": resp.source,
        "model": resp.model,
        "sample": resp.sample,
        "judges": [{"judge": v.judge, "verdict": v.verdict, "confidence": v.confidence} for v in resp.verdicts],
    }


def review_view(review: Review) -> dict[str, Any]:
    return {
        "reviewer": review.reviewer.name,
        "verdict": review.verdict,
        "choice": review.choice,
        "corrected_response": review.corrected_response,
        "note": review.note,
        "updated_at": review.updated_at.isoformat(),
    }


def item_summary(item: Item) -> dict[str, Any]:
    """What the queue lists of an item."""
    p = item.prompt
    return {
        "id": item.id,
        "kind": item.kind,
        "group": item.group.name,
        "status": item.status,
        "version": item.version,
        "priority": item.priority,
        "priority_reasons": [r for r in item.priority_reasons.split("; ") if r],
        "reviews_in": len(item.reviews),
        "required_reviews": item.required_reviews,
        "harm_level": p.harm_level,
        "principle": p.principle,
        "method": p.method,
        "prompt": p.text,
        "final_verdict": item.final_verdict,
        "final_choice": item.final_choice,
        "decision": item.decision,
    }


def item_view(item: Item, user: User) -> dict[str, Any]:
    """Everything the review page shows of an item to ``user``.

    Reviews stay blind: other reviewers' reviews are shown only to admins, to adjudicators, and
    once the item is decided.
    """
    p = item.prompt
    mine = next((r for r in item.reviews if r.reviewer_id == user.id), None)
    adjudicator = can_adjudicate(user, item)
    show_reviews = user.is_admin or adjudicator or item.status == ItemStatus.DONE.value
    out = item_summary(item)
    out.update(
        prompt={
            "id": p.key,
            "text": p.text,
            "harm_level": p.harm_level,
            "harm_label": HARM_LEVELS.get(p.harm_level) if p.harm_level is not None else "unknown",
            "principle": p.principle,
            "principle_title": PRINCIPLES.get(p.principle or "", p.principle),
            "method": p.method,
            "base_prompt_id": p.base_prompt_id,
        },
        response=response_view(item.response),
        response_b=response_view(item.response_b) if item.response_b is not None else None,
        my_review=review_view(mine) if mine else None,
        reviews=[review_view(r) for r in item.reviews] if show_reviews else None,
        final=(
            {
                "verdict": item.final_verdict,
                "choice": item.final_choice,
                "corrected_response": item.final_response,
                "note": item.final_note,
                "decision": item.decision,
                "decided_by": item.decided_by.name if item.decided_by else None,
                "decided_at": item.decided_at.isoformat() if item.decided_at else None,
            }
            if item.status == ItemStatus.DONE.value
            else None
        ),
        can_adjudicate=adjudicator,
        can_review=item.decision != "adjudicated" and (mine is not None or len(item.reviews) < item.required_reviews),
    )
    return out


def user_view(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role,
        "active": user.active,
        "groups": [g.name for g in user.groups],
        "created_at": user.created_at.isoformat(),
    }


def group_view(group: Group, *, with_policy: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": group.name, "reviews_required": group.reviews_required}
    if with_policy:
        out["policy"] = group.policy_text
        out["members"] = [u.name for u in group.members]
    return out
