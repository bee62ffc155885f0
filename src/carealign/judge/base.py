"""The judge protocol: every judge turns (prompt, response) items into verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from carealign.domain import Verdict


@dataclass(frozen=True)
class JudgeItem:
    """What a judge sees: the user prompt, the assistant's response, and the harm level if known."""

    prompt: str
    response: str
    harm_level: int | None = None


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one item.

    ``confidence`` is the judge's probability for its verdict (0-1); for ``Unscored`` it is 0.
    ``needs_review`` marks an item a human should look at (a panel whose members disagree);
    ``votes`` holds each member's verdict (member identity -> verdict) for judges made of several.
    """

    verdict: Verdict
    confidence: float
    judge: str
    reason: str | None = None
    needs_review: bool = False
    votes: dict[str, str] | None = field(default=None, hash=False)  # a dict: left out of the hash

    @classmethod
    def unscored(cls, judge: str, reason: str) -> Judgement:
        return cls(verdict=Verdict.UNSCORED, confidence=0.0, judge=judge, reason=reason)


@runtime_checkable
class Judge(Protocol):
    """A judge of responses. Implementations: ``rules``, ``llm`` (self or external), ``panel``."""

    @property
    def identity(self) -> str:
        """A stable string naming the judge and its model, recorded with every verdict."""
        ...

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        """One judgement per item, in order."""
        ...
