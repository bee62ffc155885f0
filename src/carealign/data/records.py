"""The prompt record: one medical prompt with its CARES annotations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from carealign.domain import METHODS, PRINCIPLES


class PromptRecord(BaseModel):
    """One prompt to evaluate or train on.

    ``harm_level`` is ``None`` when unknown (deployment logs, other datasets); such
    prompts get verdicts but no Safety Score.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Unique id of the prompt within its source.")
    prompt: str = Field(description="The user message sent to the assistant.")
    harm_level: int | None = Field(default=None, ge=0, le=3, description="CARES harm level 0-3.")
    principle: str | None = Field(default=None, description="CARES principle slug or free text.")
    method: str | None = Field(default=None, description="direct, indirect, obfuscate or role_play.")
    base_prompt_id: str | None = Field(
        default=None, description="Id shared by all rewrites of one base prompt (split key)."
    )
    source: str = Field(default="file", description="Where the prompt came from.")
    split: str | None = Field(default=None, description="train, validation or test, if known.")
    reference_response: str | None = Field(
        default=None,
        description="A written good response to the prompt (a public set's safe response or answer), "
        "used by the demonstration stage.",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("prompt is empty")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        if value is not None and value not in METHODS:
            raise ValueError(f"unknown method {value!r}; expected one of {', '.join(METHODS)}")
        return value

    @property
    def group(self) -> str:
        """The key that keeps rewrites of one base prompt together (base prompt id, else id)."""
        return self.base_prompt_id or self.id

    @property
    def principle_title(self) -> str | None:
        """Human-readable principle name."""
        if self.principle is None:
            return None
        return PRINCIPLES.get(self.principle, self.principle)
