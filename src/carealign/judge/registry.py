"""Build a judge from its name.

Judge specs:

- ``rules``: pattern-based;
- ``llm`` or ``self``: the policy model judges its own responses (needs the policy);
- ``llm:MODEL``: an external model (any model spec: registered name, directory, hub id,
  or ``openai:MODEL@BASE_URL``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carealign.errors import JudgeError
from carealign.generate.base import LabelScorer
from carealign.judge.base import Judge
from carealign.judge.llm import LLMJudge
from carealign.judge.rules import RulesJudge

JUDGE_SPECS = ("rules", "llm", "self", "llm:MODEL")

#: Judges added with :func:`register_judge`: name -> factory(policy=..., **model_kwargs).
_REGISTERED: dict[str, Callable[..., Judge]] = {}


def register_judge(name: str, factory: Callable[..., Judge]) -> None:
    """Make ``factory`` available as judge spec ``name`` (for plug-in judges and tests).

    The factory is called as ``factory(policy=<generator or None>, **model_kwargs)``.
    """
    if name in ("rules", "llm", "self") or name.startswith("llm:"):
        raise JudgeError(f"{name!r} is a built-in judge name")
    _REGISTERED[name] = factory


def unregister_judge(name: str) -> None:
    """Remove a judge added with :func:`register_judge`."""
    _REGISTERED.pop(name, None)


def check_judge_spec(spec: str) -> None:
    """Raise :class:`JudgeError` for a judge spec that no factory knows (before loading models)."""
    spec = spec.strip()
    if spec in ("rules", "llm", "self") or (spec.startswith("llm:") and len(spec) > 4) or spec in _REGISTERED:
        return
    raise JudgeError(f"unknown judge {spec!r}; expected one of {', '.join((*JUDGE_SPECS, *_REGISTERED))}")


def make_judge(spec: str, *, policy: Any | None = None, **model_kwargs: Any) -> Judge:
    """A judge for ``spec``; ``policy`` is the generator being judged (used by self-judging)."""
    spec = spec.strip()
    if spec in _REGISTERED:
        return _REGISTERED[spec](policy=policy, **model_kwargs)
    if spec == "rules":
        return RulesJudge()
    if spec in ("llm", "self", "llm:self"):
        if policy is None:
            raise JudgeError(
                f"judge {spec!r} is the policy judging itself, and there is no policy model here; "
                "pass --model (the model that wrote the responses) or use llm:MODEL"
            )
        if not isinstance(policy, LabelScorer):
            raise JudgeError(f"the policy backend {type(policy).__name__} cannot act as a judge")
        return LLMJudge(policy, role="self")
    if spec.startswith("llm:"):
        from carealign.generate.registry import load_generator

        model = spec.removeprefix("llm:")
        if policy is not None and getattr(policy, "name", None) == model:
            return LLMJudge(policy, role="self")
        return LLMJudge(load_generator(model, **model_kwargs), role="external")
    raise JudgeError(f"unknown judge {spec!r}; expected one of {', '.join((*JUDGE_SPECS, *_REGISTERED))}")
