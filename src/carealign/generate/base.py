"""The generation protocol shared by every backend (Hugging Face, OpenAI-compatible servers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Called after each finished chunk of work with (items done, tokens generated).
ProgressCallback = Callable[[int, int], None]


@dataclass
class GenerationConfig:
    """How to sample responses. Mirrors the knobs of ``transformers.GenerationConfig``."""

    max_new_tokens: int = field(default=256, metadata={"help": "Tokens to generate per response."})
    temperature: float = field(
        default=0.0, metadata={"help": "0 means greedy decoding; > 0 samples with this temperature."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (sampling only)."})
    samples: int = field(default=1, metadata={"help": "Responses per prompt (k)."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampler."})
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message; None keeps the chat template's default."}
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.samples < 1:
            raise ValueError("samples must be >= 1")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    """One generated response."""

    text: str
    n_tokens: int
    #: Tokens of the prompt as the backend read it (chat template applied), where it knows them.
    prompt_tokens: int | None = None


@runtime_checkable
class Generator(Protocol):
    """Anything that turns user prompts into assistant responses."""

    @property
    def identity(self) -> str:
        """A stable string naming the backend and model, recorded with every output."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """Return ``config.samples`` completions for every prompt, in prompt order."""
        ...

    def generate_chat(
        self,
        conversations: Sequence[list[dict[str, str]]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """Like :meth:`generate` for whole conversations (``config.system_prompt`` is ignored)."""
        ...


@runtime_checkable
class LabelScorer(Protocol):
    """A backend that can read the probability of candidate answers (used by the LLM judge)."""

    @property
    def identity(self) -> str: ...

    def label_logprobs(
        self, conversations: Sequence[list[dict[str, str]]], labels: Sequence[str]
    ) -> list[dict[str, float] | None]:
        """Log-probability of each label as the start of the assistant's reply.

        Returns ``None`` for a conversation where the backend cannot read probabilities.
        """
        ...

    def complete_chat(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        """Greedy free-text replies to whole conversations (fallback when no probabilities)."""
        ...


class ChatTemplateGenerator:
    """What local backends share: the tokenizer's chat template turns prompts and conversations into
    text, and the backend's ``generate_rendered`` does the rest (Hugging Face, CTranslate2)."""

    tokenizer: Any

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
        """The chat template applied to ``messages``, as text."""
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        )

    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """``config.samples`` responses per prompt, batched; returned in prompt order."""
        return self.generate_chat([build_messages(p, config.system_prompt) for p in prompts], config, progress)

    def generate_chat(
        self,
        conversations: Sequence[list[dict[str, str]]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """Like :meth:`generate` for whole conversations (system prompt, examples, user turn)."""
        return self.generate_rendered([self.render(c) for c in conversations], config, progress)

    def generate_rendered(
        self,
        texts: Sequence[str],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """Like :meth:`generate` for prompts already rendered with the chat template."""
        raise NotImplementedError


def build_messages(prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat messages for one user prompt, with an optional system message."""
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": prompt})
    return messages
