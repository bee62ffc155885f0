"""One registry for plug-in points: a decorator, and an entry-point group a third-party package fills."""

from __future__ import annotations

from importlib import metadata

import pytest

from carealign.domain import Verdict
from carealign.errors import JudgeError
from carealign.judge import JudgeItem, Judgement, make_judge
from carealign.judge.registry import JUDGES, check_judge_spec
from carealign.registry import Registry


class KeywordJudge:
    """Refuse when the response contains the keyword given after ``keyword:``."""

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword
        self.identity = f"keyword:{keyword}"

    def judge(self, items):
        return [
            Judgement(Verdict.REFUSE if self.keyword in i.response else Verdict.ACCEPT, 1.0, self.identity)
            for i in items
        ]


def make_plugin_judge(arg, *, policy=None, **kw):
    return KeywordJudge(arg or "sorry")


def test_the_decorator_registers_a_factory() -> None:
    reg: Registry = Registry("carealign.test-none", "thing")

    @reg.register("double", help="doubles")
    def double(x: int) -> int:
        return 2 * x

    assert reg.get("double") is double and reg.get("missing") is None and reg.names() == ["double"]
    reg.remove("double")
    assert "double" not in reg


def test_builtin_judge_names_cannot_be_replaced() -> None:
    with pytest.raises(ValueError, match="built-in"):
        JUDGES.add("rules", make_plugin_judge)


def test_a_judge_from_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = metadata.EntryPoint(name="keyword", value="tests.test_registry:make_plugin_judge", group="carealign.judges")
    real = metadata.entry_points

    def entry_points(**kw):
        return [ep] if kw.get("group") == "carealign.judges" else real(**kw)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    monkeypatch.setattr(JUDGES, "_entry_points_loaded", False)
    try:
        check_judge_spec("keyword:refuse")
        judge = make_judge("keyword:cannot")
        out = judge.judge([JudgeItem("q", "I cannot help."), JudgeItem("q", "Here you go.")])
        assert [j.verdict for j in out] == [Verdict.REFUSE, Verdict.ACCEPT]
        assert judge.identity == "keyword:cannot"
    finally:
        JUDGES.remove("keyword")
    with pytest.raises(JudgeError, match="unknown judge"):
        check_judge_spec("nonexistent-judge")
