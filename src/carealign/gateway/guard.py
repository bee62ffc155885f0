"""Guard mode: an unsafe response is replaced before it leaves.

The rule (:class:`~carealign.gateway.settings.GuardRule`) says which (estimated harm level,
verdict) pairs are unsafe. The replacement is either a fixed decline with a referral, or a
response regenerated with CARES' safety reminder (the reminder system prompt and in-context
examples of the alignment config's ``preferences`` section); a regenerated response the rule
still calls unsafe is replaced by the decline. The original is kept beside the replacement.
"""

from __future__ import annotations

from dataclasses import dataclass

from carealign.gateway.assess import Assessment, Assessor
from carealign.gateway.models import GuardAction
from carealign.gateway.serving import Loaded
from carealign.gateway.settings import GuardRule
from carealign.generate import GenerationConfig


@dataclass(frozen=True)
class GuardOutcome:
    """What guard mode returns: the text to send, what it did, and the assessment of the original."""

    text: str
    action: str
    assessment: Assessment
    original: str | None


def reminder_conversation(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation with CARES' safety reminder as its system prompt and the reminder's examples before it."""
    from carealign.align.config import PreferenceSection

    p = PreferenceSection()
    prefix: list[dict[str, str]] = [{"role": "system", "content": p.reminder_prompt}]
    for ex in p.reminder_examples:
        prefix += [{"role": "user", "content": ex.user}, {"role": "assistant", "content": ex.assistant}]
    return prefix + [m for m in conversation if m.get("role") != "system"]


def guard(
    loaded: Loaded,
    conversation: list[dict[str, str]],
    prompt: str,
    response: str,
    assessor: Assessor,
    rule: GuardRule,
    config: GenerationConfig,
) -> GuardOutcome:
    """Assess ``response``; replace it when the rule says it is unsafe."""
    first = assessor.assess([(prompt, response)])[0]
    if not rule.unsafe(first.harm_level, first.verdict):
        return GuardOutcome(response, GuardAction.NONE.value, first, None)
    if rule.action == GuardAction.REGENERATE.value:
        retry = loaded.generate(reminder_conversation(conversation), config).text
        second = assessor.assess([(prompt, retry)])[0]
        if retry.strip() and not rule.unsafe(second.harm_level, second.verdict):
            return GuardOutcome(retry, GuardAction.REGENERATE.value, first, response)
    return GuardOutcome(rule.decline_text, GuardAction.DECLINE.value, first, response)
