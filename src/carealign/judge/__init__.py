"""Judging: verdicts (Accept, Caution, Refuse, Unscored) on responses."""

from carealign.judge.base import Judge, JudgeItem, Judgement
from carealign.judge.llm import LLMJudge
from carealign.judge.panel import PanelJudge
from carealign.judge.registry import make_judge, register_judge, unregister_judge
from carealign.judge.rules import RulesJudge

__all__ = [
    "Judge",
    "JudgeItem",
    "Judgement",
    "LLMJudge",
    "PanelJudge",
    "RulesJudge",
    "make_judge",
    "register_judge",
    "unregister_judge",
]
