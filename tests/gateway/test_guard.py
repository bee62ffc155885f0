"""Guard mode: an unsafe response is replaced before it leaves, and the original is kept beside it."""

from __future__ import annotations

from typing import Any

from carealign.domain import Verdict
from carealign.gateway.assess import Assessor
from carealign.gateway.guard import guard, reminder_conversation
from carealign.gateway.serving import ServedPolicy
from carealign.gateway.settings import DEFAULT_DECLINE, GuardRule
from carealign.generate import GenerationConfig
from carealign.judge import Judgement

from .conftest import BENIGN, HARMFUL, RunningGateway, ask


class ScriptedJudge:
    """Accept for the policy's first answer, Refuse once it was told the safety reminder (seen by the prompt text)."""

    identity = "scripted"

    def __init__(self, verdicts: list[Verdict]) -> None:
        self.verdicts = list(verdicts)

    def judge(self, items: Any) -> list[Judgement]:
        return [Judgement(self.verdicts.pop(0), 0.9, self.identity) for _ in items]


def test_guard_replaces_a_harmful_answer_and_keeps_the_original(guard_gateway: RunningGateway) -> None:
    resp = ask(guard_gateway.client(), HARMFUL)
    text = resp.choices[0].message.content
    ex = guard_gateway.exchange(resp.id)
    assert ex is not None and ex.judged_at is not None  # judged before it left: no task waits
    assert ex.harm_level >= 2 and ex.verdict in ("Accept", "Unscored")
    if ex.verdict == "Accept":
        assert text == DEFAULT_DECLINE and ex.response == DEFAULT_DECLINE
        assert ex.guard_action == "decline" and "guarded" in ex.flags
        assert ex.original_response is not None and ex.original_response != text
    assert ex.review_item_id is not None  # risky either way: people see what the policy wrote
    with guard_gateway.sessions() as db:
        from carealign.review.models import Item

        item = db.get(Item, ex.review_item_id)
        assert item is not None
        assert item.response.text == (ex.original_response if ex.original_response is not None else ex.response)


def test_guard_leaves_a_benign_answer_alone(guard_gateway: RunningGateway) -> None:
    resp = ask(guard_gateway.client(), BENIGN)
    ex = guard_gateway.exchange(resp.id)
    assert ex is not None and ex.harm_level is not None
    if ex.harm_level < 2:
        assert ex.guard_action == "none" and ex.original_response is None
        assert resp.choices[0].message.content == ex.response


def _assessor(verdicts: list[Verdict]) -> Assessor:
    return Assessor(ScriptedJudge(verdicts))


def test_guard_rule_decline_and_regenerate(tiny_generator: Any) -> None:
    loaded = ServedPolicy("tiny", generator=tiny_generator).current
    conv = [{"role": "user", "content": HARMFUL}]
    cfg = GenerationConfig(max_new_tokens=8)
    # decline: harmful prompt, Accept -> the decline text, original kept
    out = guard(loaded, conv, HARMFUL, "Sure, here is how.", _assessor([Verdict.ACCEPT]), GuardRule(), cfg)
    assert out.action == "decline" and out.text == DEFAULT_DECLINE and out.original == "Sure, here is how."
    # a Refuse passes untouched
    out = guard(loaded, conv, HARMFUL, "I can't help.", _assessor([Verdict.REFUSE]), GuardRule(), cfg)
    assert out.action == "none" and out.text == "I can't help." and out.original is None
    # regenerate: the reminder-conditioned answer is judged again; a safe one is sent
    rule = GuardRule(action="regenerate")
    out = guard(loaded, conv, HARMFUL, "Sure.", _assessor([Verdict.ACCEPT, Verdict.REFUSE]), rule, cfg)
    if out.action == "regenerate":  # the tiny model may write nothing: then the decline is sent
        assert out.text and out.text != "Sure." and out.original == "Sure."
    else:
        assert out.action == "decline"
    # a regenerated answer still unsafe falls back to the decline
    out = guard(loaded, conv, HARMFUL, "Sure.", _assessor([Verdict.ACCEPT, Verdict.ACCEPT]), rule, cfg)
    assert out.action == "decline" and out.text == DEFAULT_DECLINE
    # a rule that only guards level 3 with Caution ignores an Accept
    narrow = GuardRule(min_harm_level=3, verdicts=("caution",))
    assert narrow.verdicts == ("Caution",)
    assert not narrow.unsafe(3, "Accept") and narrow.unsafe(3, "Caution") and not narrow.unsafe(2, "Caution")


def test_reminder_conversation_puts_the_reminder_first() -> None:
    conv = reminder_conversation([{"role": "system", "content": "mine"}, {"role": "user", "content": "q"}])
    assert conv[0]["role"] == "system" and "careful medical assistant" in conv[0]["content"]
    assert conv[-1] == {"role": "user", "content": "q"} and all(m["content"] != "mine" for m in conv)


def test_flags_route_harmful_accepts_low_confidence_and_uncertain_harm() -> None:
    class Fixed:
        identity = "fixed"

        def __init__(self, verdict: Verdict, confidence: float) -> None:
            self.v, self.c = verdict, confidence

        def judge(self, items: Any) -> list[Judgement]:
            return [Judgement(self.v, self.c, "fixed") for _ in items]

    a = Assessor(Fixed(Verdict.ACCEPT, 0.9)).assess([(HARMFUL, "Sure, here is how.")])[0]
    assert a.harm_level >= 2 and "harmful_accepted" in a.flags and a.route and a.score == 0.0
    a = Assessor(Fixed(Verdict.REFUSE, 0.9)).assess([(HARMFUL, "No.")])[0]
    assert "harmful_accepted" not in a.flags and a.score == 1.0
    a = Assessor(Fixed(Verdict.REFUSE, 0.3)).assess([(HARMFUL, "No.")])[0]
    assert "low_judge_confidence" in a.flags and a.route
    a = Assessor(Fixed(Verdict.UNSCORED, 0.0)).assess([(HARMFUL, "")])[0]
    assert "unscored" in a.flags and a.score is None
