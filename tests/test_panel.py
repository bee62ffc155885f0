"""The panel judge: majority and weighted votes, tie-breaks, abstentions, review flags, registry specs."""

from __future__ import annotations

import pytest

from carealign.domain import Verdict
from carealign.errors import JudgeError
from carealign.evaluate import judge_rows
from carealign.judge import JudgeItem, Judgement, PanelJudge, make_judge, register_judge, unregister_judge
from carealign.judge.registry import check_judge_spec

A, C, R, U = Verdict.ACCEPT, Verdict.CAUTION, Verdict.REFUSE, Verdict.UNSCORED


class StubJudge:
    """A deterministic judge: item i gets ``verdicts[i]`` with ``confidences[i]`` (cycling)."""

    def __init__(self, identity: str, verdicts: list[Verdict], confidences: list[float] | None = None):
        self.identity = identity
        self.verdicts = verdicts
        self.confidences = confidences or [0.8] * len(verdicts)
        self.calls = 0

    def judge(self, items):
        self.calls += 1
        out = []
        for i in range(len(items)):
            v = self.verdicts[i % len(self.verdicts)]
            c = 0.0 if v is U else self.confidences[i % len(self.confidences)]
            out.append(Judgement(v, c, self.identity))
        return out


def panel(spec: list[tuple[Verdict, float]], **kw) -> PanelJudge:
    """A panel of one-item stub judges named j1, j2, ... giving the listed (verdict, confidence)."""
    return PanelJudge([StubJudge(f"j{i}", [v], [c]) for i, (v, c) in enumerate(spec, start=1)], **kw)


def one(p: PanelJudge) -> Judgement:
    (j,) = p.judge([JudgeItem("prompt", "response")])
    return j


def test_majority_vote_and_disagreement_flag():
    j = one(panel([(R, 0.9), (R, 0.6), (C, 0.99)]))
    assert j.verdict is R
    assert j.confidence == pytest.approx(2 / 3)
    assert j.needs_review is True  # not unanimous
    assert j.votes == {"j1": "Refuse", "j2": "Refuse", "j3": "Caution"}
    assert j.judge == "panel[majority](j1,j2,j3)"
    assert "Refuse 2" in j.reason and "Caution 1" in j.reason


def test_unanimous_panel_needs_no_review():
    j = one(panel([(A, 0.7), (A, 0.9), (A, 0.5)]))
    assert (j.verdict, j.confidence, j.needs_review) == (A, 1.0, False)


def test_majority_tie_broken_by_summed_confidence_then_safer_verdict():
    j = one(panel([(R, 0.6), (C, 0.9)]))
    assert j.verdict is C and j.confidence == pytest.approx(0.5) and j.needs_review
    # equal confidence too: the safer verdict wins (Refuse > Caution > Accept)
    assert one(panel([(A, 0.7), (R, 0.7)])).verdict is R
    assert one(panel([(A, 0.7), (C, 0.7)])).verdict is C
    assert one(panel([(C, 0.7), (R, 0.7)])).verdict is R
    # two against two: summed confidence decides (A 0.9+0.9 = 1.8 > R 0.5+0.6 = 1.1)
    assert one(panel([(A, 0.9), (R, 0.5), (A, 0.9), (R, 0.6)])).verdict is A


def test_weighted_vote_follows_confidence_not_head_count():
    spec = [(A, 0.3), (A, 0.3), (R, 0.9)]
    assert one(panel(spec)).verdict is A  # majority: two votes to one
    j = one(panel(spec, mode="weighted"))
    assert j.verdict is R
    assert j.confidence == pytest.approx(0.9 / 1.5)
    assert j.needs_review
    assert j.judge == "panel[weighted](j1,j2,j3)"
    # a weight tie goes to more votes, then to the safer verdict
    assert one(panel([(A, 0.4), (A, 0.4), (R, 0.8)], mode="weighted")).verdict is A
    assert one(panel([(A, 0.5), (R, 0.5)], mode="weighted")).verdict is R
    # all decided members at confidence 0: one vote each
    assert one(panel([(C, 0.0), (C, 0.0), (A, 0.0)], mode="weighted")).verdict is C


def test_unscored_members_abstain():
    j = one(panel([(U, 0.0), (R, 0.8), (R, 0.9)]))
    assert j.verdict is R and j.confidence == 1.0
    assert j.needs_review is False  # the decided members agree and 2/3 >= min_agreement 0.5
    assert j.votes == {"j1": "Unscored", "j2": "Refuse", "j3": "Refuse"}
    assert "1 unscored" in j.reason
    strict = one(panel([(U, 0.0), (R, 0.8), (R, 0.9)], min_agreement=0.9))
    assert strict.verdict is R and strict.needs_review  # 2 of 3 members < 0.9
    lone = one(panel([(U, 0.0), (U, 0.0), (C, 0.6)]))
    assert lone.verdict is C and lone.confidence == 1.0 and lone.needs_review  # 1/3 < 0.5


def test_all_unscored_is_unscored_and_flagged():
    j = one(panel([(U, 0.0), (U, 0.0)], mode="weighted"))
    assert j.verdict is U and j.confidence == 0.0 and j.needs_review
    assert j.reason == "no member decided"


def test_panel_judges_a_batch_with_one_call_per_member():
    m1 = StubJudge("m1", [A, R, C])
    m2 = StubJudge("m2", [A, R, R])
    out = PanelJudge([m1, m2]).judge([JudgeItem("p", "r")] * 3)
    assert [o.verdict for o in out] == [A, R, R]  # item 3: C 0.8 vs R 0.8 -> safer
    assert [o.needs_review for o in out] == [False, False, True]
    assert m1.calls == m2.calls == 1


def test_panel_errors():
    with pytest.raises(JudgeError, match="at least two"):
        PanelJudge([StubJudge("a", [A])])
    with pytest.raises(JudgeError, match="must differ"):
        PanelJudge([StubJudge("a", [A]), StubJudge("a", [R])])
    with pytest.raises(JudgeError, match="mode"):
        PanelJudge([StubJudge("a", [A]), StubJudge("b", [R])], mode="median")  # type: ignore[arg-type]
    with pytest.raises(JudgeError, match="min_agreement"):
        PanelJudge([StubJudge("a", [A]), StubJudge("b", [R])], min_agreement=1.5)

    class Short(StubJudge):
        def judge(self, items):
            return super().judge(items)[:-1]

    with pytest.raises(JudgeError, match="returned 1 judgements for 2 items"):
        PanelJudge([Short("s", [A]), StubJudge("b", [R])]).judge([JudgeItem("p", "r")] * 2)


def test_judgement_stays_backward_compatible():
    j = Judgement(A, 0.5, "x")
    assert j.needs_review is False and j.votes is None
    assert hash(j) == hash(Judgement(A, 0.5, "x"))
    assert hash(Judgement(A, 0.5, "x", votes={"a": "Accept"}))  # a dict field does not break hashing


@pytest.fixture
def stub_judges():
    seen: list[dict] = []

    def factory(identity, verdicts, confidences=None):
        def make(policy=None, **kw):
            seen.append({"identity": identity, "policy": policy, **kw})
            return StubJudge(identity, verdicts, confidences)

        return make

    register_judge("stub-a", factory("stub-a", [R, A], [0.9, 0.6]))
    register_judge("stub-b", factory("stub-b", [R, C], [0.8, 0.7]))
    register_judge("stub-c", factory("stub-c", [C, C], [0.6, 0.95]))
    yield seen
    for name in ("stub-a", "stub-b", "stub-c"):
        unregister_judge(name)


def test_panel_specs_in_the_registry(stub_judges):
    j = make_judge("panel:stub-a, stub-b,stub-c", policy="POLICY", device="cpu")
    assert isinstance(j, PanelJudge) and j.mode == "majority"
    assert j.identity == "panel[majority](stub-a,stub-b,stub-c)"
    assert [s["policy"] for s in stub_judges] == ["POLICY"] * 3  # policy and model kwargs pass through
    assert all(s["device"] == "cpu" for s in stub_judges)
    out = j.judge([JudgeItem("p", "r"), JudgeItem("p", "r")])
    assert [o.verdict for o in out] == [R, C]
    w = make_judge("panel-weighted:stub-a,stub-b,stub-c")
    assert w.mode == "weighted" and w.identity.startswith("panel[weighted](")
    # item 2: A 0.6, C 0.7 + 0.95 = 1.65
    assert w.judge([JudgeItem("p", "r")] * 2)[1].confidence == pytest.approx(1.65 / 2.25)
    check_judge_spec("panel:rules,stub-a")
    mixed = make_judge("panel:rules,stub-a")
    assert mixed.identity == "panel[majority](rules-v3,stub-a)"


def test_panel_spec_errors(stub_judges):
    with pytest.raises(JudgeError, match="unknown judge 'oracle'"):
        check_judge_spec("panel:rules,oracle")
    with pytest.raises(JudgeError, match="unknown judge 'oracle'"):
        make_judge("panel:stub-a,oracle")
    assert stub_judges == []  # no member was built before the bad name was found
    with pytest.raises(JudgeError, match="two or more"):
        check_judge_spec("panel:rules")
    with pytest.raises(JudgeError, match="two or more"):
        make_judge("panel-weighted:rules,")
    with pytest.raises(JudgeError, match="cannot be nested"):
        check_judge_spec("panel:rules,panel:stub-a,stub-b")
    with pytest.raises(JudgeError, match="built-in"):
        register_judge("panel:x", lambda policy=None: StubJudge("x", [A]))


def test_judge_rows_writes_review_columns_only_for_panels(stub_judges):
    rows = [{"prompt": "p1", "response": "r1", "harm_level": 3}, {"prompt": "p2", "response": "r2"}]
    out = judge_rows(rows, make_judge("panel:stub-a,stub-b,stub-c"))
    assert [r["verdict"] for r in out] == ["Refuse", "Caution"]
    assert [r["needs_review"] for r in out] == [True, True]
    assert out[0]["votes"] == {"stub-a": "Refuse", "stub-b": "Refuse", "stub-c": "Caution"}
    assert out[0]["score"] == 1.0
    plain = judge_rows(rows, make_judge("stub-a"))
    assert "needs_review" not in plain[0] and "votes" not in plain[0]
