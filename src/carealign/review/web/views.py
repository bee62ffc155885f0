"""Items, users and groups as plain dicts: the same shapes feed the pages and the JSON API.

In a blind group (``Group.blind``) the judges' verdicts of an item, and the priority reasons that
quote them, are withheld from a reviewer until they have given their own review (adjudicators,
and everyone once the item is decided, see them); ``judges_hidden`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from carealign.domain import HARM_LEVELS, PRINCIPLES
from carealign.review.models import Group, Item, ItemStatus, Response, Review, User
from carealign.review.policies import correction_is_preference, group_policy
from carealign.review.reviewing import MAX_CORRECTION, MAX_NOTE, can_adjudicate
from carealign.review.wording import VERDICT_WORDS, verdict_phrase

#: Priority reasons that quote or describe the judges (withheld in blind review).
_JUDGE_REASON = re.compile(r"^(judges |low confidence|.* could not decide$|no judge verdict)")


def response_view(resp: Response, *, hide_judges: bool = False, compare_to: str | None = None) -> dict[str, Any]:
    """A response; its judges' verdicts unless hidden, each marked whether it matches ``compare_to``."""
    judges = [
        {
            "judge": v.judge,
            "verdict": v.verdict,
            "confidence": v.confidence,
            "agrees": None if compare_to is None else v.verdict == compare_to,
        }
        for v in resp.verdicts
    ]
    return {
        "id": resp.id,
        "text": resp.text,
        "source": resp.source,
        "model": resp.model,
        "sample": resp.sample,
        "judges": None if hide_judges else judges,
    }


def judges_hidden(item: Item, user: User) -> bool:
    """Whether ``user`` may not see the judges' verdicts of ``item`` yet (blind review)."""
    if not item.group.blind or item.status == ItemStatus.DONE.value:
        return False
    if any(r.reviewer_id == user.id for r in item.reviews):
        return False
    return not (item.status == ItemStatus.ADJUDICATE.value and can_adjudicate(user, item))


def priority_words(reasons: Sequence[str], harm_level: int | None, *, hidden: bool) -> str:
    """Why an item stands where it does in the queue, as a sentence."""
    parts: list[str] = []
    for r in reasons:
        if hidden and _JUDGE_REASON.match(r):
            continue
        if r.startswith("low confidence "):
            parts.append(f"a judge is unsure (confidence {r.removeprefix('low confidence ')})")
        elif r.startswith("harm level ") and harm_level is not None:
            parts.append(f"the request is harm level {harm_level} ({HARM_LEVELS.get(harm_level, '?')})")
        elif r == "harm level unknown":
            parts.append("the request's harm level is unknown")
        else:
            parts.append(r)
    if hidden:
        parts.append("the judges' verdicts are hidden until you decide (blind review)")
    if not parts:
        return "Nothing stands out: the judges agree and are confident, and the harm level is low."
    return "Here because " + "; ".join(parts) + "."


def review_view(review: Review) -> dict[str, Any]:
    return {
        "reviewer": review.reviewer.name,
        "verdict": review.verdict,
        "verdict_phrase": verdict_phrase(review.verdict) if review.verdict else None,
        "choice": review.choice,
        "blind": review.blind,
        "corrected_response": review.corrected_response,
        "note": review.note,
        "updated_at": review.updated_at.isoformat(),
    }


def item_summary(item: Item, user: User) -> dict[str, Any]:
    """What the queue lists of an item (for ``user``: blind groups hide what the judges said)."""
    p = item.prompt
    hidden = judges_hidden(item, user)
    reasons = [r for r in item.priority_reasons.split("; ") if r]
    if hidden:
        reasons = [r for r in reasons if not _JUDGE_REASON.match(r)]
    return {
        "id": item.id,
        "kind": item.kind,
        "group": item.group.name,
        "status": item.status,
        "version": item.version,
        "priority": item.priority,
        "priority_reasons": reasons,
        "priority_words": priority_words(reasons, p.harm_level, hidden=hidden),
        "judges_hidden": hidden,
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


def verdict_options(item: Item) -> list[dict[str, Any]]:
    """The verdicts a reviewer picks from, as what the response did, each with its score under the
    group's policy at the prompt's harm level and whether a correction saved with it would be left
    out of the DPO export."""
    policy = group_policy(item.group)
    level = item.prompt.harm_level
    return [
        {
            "verdict": w.verdict,
            "phrase": w.phrase,
            "covers": w.covers,
            "key": w.key,
            "score": policy.score(level, w.verdict),
            "excludes_correction": not correction_is_preference(policy, level, w.verdict),
        }
        for w in VERDICT_WORDS
    ]


def item_view(item: Item, user: User, others: Sequence[Response] = ()) -> dict[str, Any]:
    """Everything the review page shows of an item to ``user``; ``others``: the model's other
    responses to the same prompt in this group, shown beside it.

    Reviews stay blind: other reviewers' reviews are shown only to admins, to adjudicators, and
    once the item is decided. In a blind group the judges' verdicts wait for the user's review.
    """
    p = item.prompt
    mine = next((r for r in item.reviews if r.reviewer_id == user.id), None)
    adjudicator = can_adjudicate(user, item)
    show_reviews = user.is_admin or adjudicator or item.status == ItemStatus.DONE.value
    hidden = judges_hidden(item, user)
    compare = (mine.verdict if mine else None) or item.final_verdict
    out = item_summary(item, user)
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
        response=response_view(item.response, hide_judges=hidden, compare_to=compare),
        response_b=(response_view(item.response_b, hide_judges=hidden) if item.response_b is not None else None),
        others=[response_view(r, hide_judges=hidden) for r in others],
        blind=item.group.blind,
        verdict_options=verdict_options(item) if item.kind == "label" else [],
        policy_name=group_policy(item.group).name,  # parsed once per policy text
        limits={"corrected_response": MAX_CORRECTION, "note": MAX_NOTE},
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
    out: dict[str, Any] = {"name": group.name, "reviews_required": group.reviews_required, "blind": group.blind}
    if with_policy:
        out["policy"] = group.policy_text
        out["members"] = [u.name for u in group.members]
    return out
