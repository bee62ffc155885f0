"""Request bodies of the JSON API (validated by pydantic; bad input answers 422 naming the field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from carealign.review.reviewing import MAX_CORRECTION, MAX_NOTE

VerdictIn = Literal["Accept", "Caution", "Refuse"]
ChoiceIn = Literal["a", "b", "tie"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ReviewIn(_In):
    verdict: VerdictIn = Field(description="The reviewer's verdict on the response.")
    version: int = Field(ge=1, le=2**31 - 1, description="The item version the reviewer saw.")
    corrected_response: str | None = Field(default=None, max_length=MAX_CORRECTION, description="A better response.")
    note: str | None = Field(default=None, max_length=MAX_NOTE, description="Why.")


class ChoiceBody(_In):
    choice: ChoiceIn = Field(description="a or b is better, or tie.")
    version: int = Field(ge=1, le=2**31 - 1)
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class AdjudicateIn(_In):
    version: int = Field(ge=1, le=2**31 - 1)
    verdict: VerdictIn | None = Field(default=None, description="Final verdict (label items).")
    choice: ChoiceIn | None = Field(default=None, description="Final choice (pair items).")
    corrected_response: str | None = Field(default=None, max_length=MAX_CORRECTION)
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class NextIn(_In):
    group: str | None = Field(default=None, max_length=64, description="Only this group's queue.")
    harm_level: int | None = Field(default=None, ge=0, le=3, description="Only this harm level.")
    principle: str | None = Field(default=None, max_length=128, description="Only this CARES principle.")
    source: str | None = Field(default=None, max_length=512, description="Only responses from this source.")


class UserIn(_In):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["reviewer", "admin"] = "reviewer"
    groups: list[str] = Field(default_factory=list, max_length=100)


class UserPatch(_In):
    role: Literal["reviewer", "admin"] | None = None
    groups: list[str] | None = Field(default=None, max_length=100)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class GroupIn(_In):
    name: str = Field(min_length=1, max_length=64)
    reviews_required: Literal[1, 2] = 1
    blind: bool = Field(default=False, description="Hide judges' verdicts until the reviewer decides.")
    policy: str | None = Field(default=None, max_length=20_000, description="Safety policy YAML/JSON.")


class GroupPatch(_In):
    reviews_required: Literal[1, 2] | None = None
    blind: bool | None = Field(default=None, description="Hide judges' verdicts until the reviewer decides.")
    policy: str | None = Field(default=None, max_length=20_000, description="Safety policy; empty text clears it.")


class ImportIn(_In):
    group: str = Field(min_length=1, max_length=64)
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=50_000)
    reviews_required: Literal[1, 2] | None = None
    pairs: bool = True
    max_pairs_per_prompt: int = Field(default=1, ge=0, le=100)
    source: str = Field(default="api", min_length=1, max_length=200)
