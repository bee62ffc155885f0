"""Build a judge from its name.

Judge specs:

- ``rules``: pattern-based;
- ``llm`` or ``self``: the policy model judges its own responses (needs the policy);
- ``llm:MODEL``: an external model (any model spec: registered name, directory, hub id,
  or ``openai:MODEL@BASE_URL``);
- ``classifier``: the trained judge shipped with the package; ``classifier:DIR``: one trained
  with ``carealign judge train``;
- ``panel:SPEC,SPEC,...``: a majority vote of the member judges (each any spec above or a
  registered name; panels do not nest), disagreement flagged for review;
  ``panel-weighted:SPEC,SPEC,...``: the same with confidence-weighted votes
  (see :mod:`carealign.judge.panel`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carealign.errors import JudgeError
from carealign.generate.base import LabelScorer
from carealign.judge.base import Judge
from carealign.judge.llm import LLMJudge
from carealign.judge.panel import PanelJudge
from carealign.judge.rules import RulesJudge

JUDGE_SPECS = (
    "rules",
    "llm",
    "self",
    "llm:MODEL",
    "classifier",
    "classifier:DIR",
    "panel:SPEC,SPEC,...",
    "panel-weighted:SPEC,SPEC,...",
)

#: Panel spec prefix -> voting mode.
_PANEL_PREFIXES = {"panel:": "majority", "panel-weighted:": "weighted"}


def _panel_members(spec: str) -> tuple[str, list[str]] | None:
    """(mode, member specs) of a panel spec, or None when ``spec`` is not one."""
    for prefix, mode in _PANEL_PREFIXES.items():
        if spec.startswith(prefix):
            members = [m.strip() for m in spec.removeprefix(prefix).split(",")]
            if len(members) < 2 or not all(members):
                raise JudgeError(f"judge {spec!r}: a panel needs two or more comma-separated judge specs")
            if any(m.startswith(tuple(_PANEL_PREFIXES)) for m in members):
                raise JudgeError(f"judge {spec!r}: panels cannot be nested")
            return mode, members
    return None


#: Judges added with :func:`register_judge`: name -> factory(policy=..., **model_kwargs).
_REGISTERED: dict[str, Callable[..., Judge]] = {}


def register_judge(name: str, factory: Callable[..., Judge]) -> None:
    """Make ``factory`` available as judge spec ``name`` (for plug-in judges and tests).

    The factory is called as ``factory(policy=<generator or None>, **model_kwargs)``.
    """
    if name in ("rules", "llm", "self", "classifier") or name.startswith(
        ("llm:", "classifier:", "panel:", "panel-weighted:")
    ):
        raise JudgeError(f"{name!r} is a built-in judge name")
    _REGISTERED[name] = factory


def unregister_judge(name: str) -> None:
    """Remove a judge added with :func:`register_judge`."""
    _REGISTERED.pop(name, None)


def check_judge_spec(spec: str) -> None:
    """Raise :class:`JudgeError` for a judge spec that no factory knows (before loading models)."""
    spec = spec.strip()
    if spec in ("rules", "llm", "self", "classifier") or spec in _REGISTERED:
        return
    if (spec.startswith("llm:") and len(spec) > 4) or (spec.startswith("classifier:") and len(spec) > 11):
        return
    panel = _panel_members(spec)
    if panel is not None:
        for member in panel[1]:
            check_judge_spec(member)
        return
    raise JudgeError(f"unknown judge {spec!r}; expected one of {', '.join((*JUDGE_SPECS, *_REGISTERED))}")


def make_judge(spec: str, *, policy: Any | None = None, **model_kwargs: Any) -> Judge:
    """A judge for ``spec``; ``policy`` is the generator being judged (used by self-judging)."""
    spec = spec.strip()
    if spec in _REGISTERED:
        return _REGISTERED[spec](policy=policy, **model_kwargs)
    panel = _panel_members(spec)
    if panel is not None:
        mode, members = panel
        for member in members:
            check_judge_spec(member)  # every name checked before any model loads
        return PanelJudge([make_judge(m, policy=policy, **model_kwargs) for m in members], mode=mode)
    if spec == "rules":
        return RulesJudge()
    if spec == "classifier" or spec.startswith("classifier:"):
        from carealign.judge.classifier import ClassifierJudge

        return ClassifierJudge.load(spec.partition(":")[2] or None)
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
