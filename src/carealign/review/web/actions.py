"""The item actions (review, choice, adjudicate), declared once for the pages and the JSON API.

A page form and a JSON request for the same action differ only in how they read their fields
and how they answer; checking the CSRF token, running the action and collecting its warning
happen here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from carealign.review import reviewing
from carealign.review.models import Item
from carealign.review.web.deps import Auth

#: The fields each action takes besides the item, the user and the version.
ITEM_ACTIONS: dict[str, tuple[Callable[..., Item], tuple[str, ...]]] = {
    "review": (reviewing.submit_review, ("verdict", "corrected_response", "note")),
    "choice": (reviewing.submit_choice, ("choice", "note")),
    "adjudicate": (reviewing.adjudicate, ("verdict", "choice", "corrected_response", "note")),
}


@dataclass(frozen=True)
class ActionResult:
    """An item after an action, and the warning to show about what was saved (if any)."""

    item: Item
    warning: str | None


def run_item_action(
    db: Session, auth: Auth, item_id: int, action: str, version: int, fields: dict[str, Any]
) -> ActionResult:
    """Run ``action`` on an item for the logged-in user with the ``fields`` it takes. Commits.

    Raises the service's errors (:class:`~carealign.review.errors.Conflict`,
    :class:`~carealign.review.errors.InvalidInput`, ...) for the caller to answer.
    """
    run, names = ITEM_ACTIONS[action]
    item = run(db, item_id, auth.user, version=version, **{k: fields.get(k) for k in names})
    return ActionResult(item, reviewing.correction_warning(item, auth.user))
