"""Errors of the review service. Each carries the HTTP status the web app answers with."""

from __future__ import annotations

from typing import Any

from carealign.errors import CarealignError


class ReviewError(CarealignError):
    """A request the review service refuses; ``status`` is its HTTP status code."""

    status: int = 400


class InvalidInput(ReviewError):
    """A value a user typed is wrong (unknown verdict, short password, unknown group...)."""

    status = 400


class NotFound(ReviewError):
    """No such item, user or group."""

    status = 404


class Forbidden(ReviewError):
    """The user may not do this (wrong role, not a member of the item's group, own review to adjudicate)."""

    status = 403


class Conflict(ReviewError):
    """The item changed since the user loaded it (version mismatch) or is in a state that refuses the change.

    ``current`` describes the item as it is now, so the page can show it.
    """

    status = 409

    def __init__(self, message: str, current: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.current = current or {}
