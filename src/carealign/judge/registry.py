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
from carealign.registry import Registry

#: A judge kind's factory: ``factory(arg, policy=..., **model_kwargs)``; ``arg`` is what follows
#: ``KIND:`` in the spec (None for a bare name).
JudgeFactory = Callable[..., Judge]

#: Every judge kind, built-in or plug-in (entry-point group ``carealign.judges``).
JUDGES: Registry[JudgeFactory] = Registry("carealign.judges", "judge")

#: Spellings of "the policy judges itself".
SELF_SPECS = ("llm", "self", "llm:self")


def is_self_judge(spec: str) -> bool:
    """True when ``spec`` makes the judged policy its own judge."""
    return spec.strip() in SELF_SPECS


@JUDGES.register("rules", help="rules: refusal and caution phrase patterns (instant)", builtin=True)
def _rules(arg: str | None, *, policy: Any = None, **kw: Any) -> Judge:
    return RulesJudge()


@JUDGES.register(
    "classifier", help="classifier (the shipped trained judge) or classifier:DIR (one you trained)", builtin=True
)
def _classifier(arg: str | None, *, policy: Any = None, **kw: Any) -> Judge:
    from carealign.judge.classifier import ClassifierJudge

    return ClassifierJudge.load(arg or None)


@JUDGES.register("self", help="self or llm: the policy judges its own responses", builtin=True)
def _self(arg: str | None, *, policy: Any = None, **kw: Any) -> Judge:
    if policy is None:
        raise JudgeError(
            "judge 'self' is the policy judging itself, and there is no policy model here; "
            "pass --model (the model that wrote the responses) or use llm:MODEL"
        )
    if not isinstance(policy, LabelScorer):
        raise JudgeError(f"the policy backend {type(policy).__name__} cannot act as a judge")
    return LLMJudge(policy, role="self")


@JUDGES.register("llm", help="llm:MODEL: an external model judges (any model spec, or openai:MODEL@URL)", builtin=True)
def _llm(arg: str | None, *, policy: Any = None, **kw: Any) -> Judge:
    if arg in (None, "", "self"):
        return _self(None, policy=policy)
    from carealign.generate.registry import load_generator

    if policy is not None and getattr(policy, "name", None) == arg:
        return LLMJudge(policy, role="self")
    return LLMJudge(load_generator(arg, **kw), role="external")


def _panel(mode: str) -> JudgeFactory:
    def build(arg: str | None, *, policy: Any = None, **kw: Any) -> Judge:
        members = _members(f"{_PANEL_KINDS[mode]}:{arg or ''}", arg)
        return PanelJudge([make_judge(m, policy=policy, **kw) for m in members], mode=mode)  # type: ignore[arg-type]

    return build


_PANEL_KINDS = {"majority": "panel", "weighted": "panel-weighted"}
JUDGES.add("panel", _panel("majority"), help="panel:A,B,...: majority vote, disagreement flagged", builtin=True)
JUDGES.add("panel-weighted", _panel("weighted"), help="panel-weighted:A,B,...: confidence-weighted vote", builtin=True)

#: Judge specs as the help texts list them (the registry's built-ins and plug-ins).
JUDGE_SPECS = (
    "rules",
    "classifier",
    "classifier:DIR",
    "self",
    "llm",
    "llm:MODEL",
    "panel:A,B,...",
    "panel-weighted:A,B,...",
)


def judge_help() -> str:
    """One line per judge kind, for ``--help`` texts."""
    return "; ".join(e.help or e.name for e in JUDGES)


def _split(spec: str) -> tuple[str, str | None]:
    kind, sep, arg = spec.strip().partition(":")
    return kind, (arg if sep else None)


def _members(spec: str, arg: str | None) -> list[str]:
    members = [m.strip() for m in (arg or "").split(",")]
    if len(members) < 2 or not all(members):
        raise JudgeError(f"judge {spec!r}: a panel needs two or more comma-separated judge specs")
    if any(_split(m)[0] in _PANEL_KINDS.values() for m in members):
        raise JudgeError(f"judge {spec!r}: panels cannot be nested")
    for member in members:
        check_judge_spec(member)  # every name checked before any model loads
    return members


def _unknown(spec: str) -> JudgeError:
    return JudgeError(f"unknown judge {spec!r}; expected one of {', '.join((*JUDGE_SPECS, *_plugin_names()))}")


def _plugin_names() -> list[str]:
    return [e.name for e in JUDGES if not e.builtin]


def register_judge(name: str, factory: Callable[..., Judge]) -> None:
    """Make ``factory`` available as judge spec ``name`` (for plug-in judges and tests).

    The factory is called as ``factory(policy=<generator or None>, **model_kwargs)``. Packages
    can do the same without code through the entry-point group ``carealign.judges``.
    """
    if name in ("rules", "llm", "self", "classifier", "panel", "panel-weighted") or ":" in name:
        raise JudgeError(f"{name!r} is a built-in judge name")

    def plugin(arg: str | None, *, policy: Any = None, **kw: Any) -> Judge:
        return factory(policy=policy, **kw)

    JUDGES.add(name, plugin, help=name)


def unregister_judge(name: str) -> None:
    """Remove a judge added with :func:`register_judge`."""
    JUDGES.remove(name)


def check_judge_spec(spec: str) -> None:
    """Raise :class:`JudgeError` for a judge spec that no factory knows (before loading models)."""
    spec = spec.strip()
    kind, arg = _split(spec)
    if kind not in JUDGES:
        raise _unknown(spec)
    if kind in ("llm", "classifier") and arg == "":
        raise _unknown(spec)
    if kind in _PANEL_KINDS.values():
        _members(spec, arg)
    elif arg is not None and kind in ("rules", "self"):  # plug-ins may take an argument
        raise _unknown(spec)


def make_judge(spec: str, *, policy: Any | None = None, **model_kwargs: Any) -> Judge:
    """A judge for ``spec``; ``policy`` is the generator being judged (used by self-judging)."""
    check_judge_spec(spec)
    kind, arg = _split(spec)
    factory = JUDGES.get(kind)
    assert factory is not None
    return factory(arg, policy=policy, **model_kwargs)
