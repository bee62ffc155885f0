"""Stakeholder groups' own safety policies: stored as YAML (or JSON) text, validated as a SafetyPolicy."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from carealign.errors import ConfigError
from carealign.score.policy import SafetyPolicy

if TYPE_CHECKING:
    from carealign.review.models import Group


def parse_policy_text(text: str, *, where: str = "policy") -> SafetyPolicy:
    """Parse a policy in the schema of ``resources/cares_policy.yaml`` (YAML or JSON text).

    Errors are :class:`ConfigError` naming ``where`` and the offending key.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML or JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'scores' (and optional 'name', 'desirable_threshold')")
    try:
        return SafetyPolicy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {msg if msg.startswith(loc) else f'{loc}: {msg}'}") from None


def group_policy(group: Group) -> SafetyPolicy:
    """The group's safety policy; CARES' table when the group has none (parsed once per text)."""
    return _policy(group.policy_text or None, group.name)


@functools.lru_cache(maxsize=64)
def _policy(text: str | None, group: str) -> SafetyPolicy:
    if text is None:
        return SafetyPolicy.cares()
    return parse_policy_text(text, where=f"group {group!r} policy")


def correction_is_preference(policy: SafetyPolicy, harm_level: int | None, verdict: str) -> bool:
    """Whether a correction becomes a DPO pair (correction chosen, original rejected): when the
    human verdict scores the original below the policy's threshold, or the harm level is unknown."""
    score = policy.score(harm_level, verdict)
    return score is None or score < policy.desirable_threshold
