"""Settings of the LoRA training stages, one section per method (as TRL keeps ``DPOConfig`` and ``KTOConfig``).

:class:`TrainSection` holds what every method shares (optimiser, LoRA, lengths, checkpoints);
:class:`DPOSection` and :class:`KTOSection` add their method's own settings. Each field is
declared once, with its help text; the run config, ``carealign align --init`` and the TRL
arguments (:func:`carealign.train.trl_args`) all read these classes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LoRASection(BaseModel):
    """LoRA training settings shared by every method (demonstrations, DPO, KTO)."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(default=5e-4, gt=0.0, description="AdamW learning rate (LoRA wants ~1e-4-1e-3).")
    epochs: float = Field(default=1.0, gt=0.0, description="Passes over the training data (if max_steps unset).")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimiser steps.")
    batch_size: int = Field(default=4, ge=2, description="Examples per device step (KTO needs >= 2).")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Steps accumulated per optimiser update.")
    lora_r: int = Field(default=8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(default=16, ge=1, description="LoRA scaling alpha.")
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA path.")
    target_modules: list[str] | str = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Modules that get LoRA adapters ('all-linear' for every linear layer).",
    )
    max_length: int = Field(default=256, ge=16, description="Prompt + response tokens; longer rows are truncated.")
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0, description="Share of steps with a rising learning rate.")
    logging_steps: int = Field(default=1, ge=1, description="Log loss, rewards and KL every N steps.")
    checkpoint_minutes: float = Field(
        default=5.0,
        ge=0.0,
        description="Save a Trainer checkpoint at least this often (minutes; 0 = never); a crashed training "
        "stage resumes from its last checkpoint.",
    )


class _KLAnchor(BaseModel):
    """The strength of the KL anchor (first among a preference section's keys, as the config lists them)."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(default=0.1, gt=0.0, description="Strength of the KL anchor to the reference.")


class TrainSection(LoRASection, _KLAnchor):
    """LoRA preference training (what DPO and KTO share): the reference model and its KL anchor."""

    reference: Literal["base", "previous"] = Field(
        default="previous", description="Reference model: base (pi_0) or previous (the policy this cycle starts from)."
    )
    precompute_ref_log_probs: bool = Field(
        default=False,
        description="Compute the reference model's log-probs once before training (TRL), instead of every step.",
    )


class DemoPromptSet(BaseModel):
    """A prompt set whose written responses (``reference_response``) serve as demonstrations."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="A prompt source with written responses: medsafetybench or medquad.")
    split: str = Field(default="train", description="Split (never the held-out test part).")
    limit: int | None = Field(default=None, ge=1, description="Use at most N prompts (a seeded random subset).")
    subset_seed: int = Field(default=0, description="Seed of the subset.")

    @field_validator("split")
    @classmethod
    def _not_held_out(cls, value: str) -> str:
        if value == "test":
            raise ValueError("the test part is held out from every training stage; use train")
        return value


DemoSource = Literal["samples", "reminder", "human", "public"]
DEMO_SOURCES: tuple[DemoSource, ...] = ("samples", "reminder", "human", "public")


class SFTSection(LoRASection):
    """The demonstration stage: supervised fine-tuning (TRL ``SFTTrainer``, LoRA) on good responses,
    before DPO and KTO; the candidates of the cycle are trained on top of its result.

    Demonstrations come from the policy's own samples that scored well (one per train prompt: the
    model's real answers to benign questions and its rare refusals of harmful ones, which keep it
    answering in the prompts' own domain), the reminder responses that scored well (a refusal drawn
    with the safety reminder for a harmful prompt, a good answer for a benign one), reviewers' corrected
    responses, and the written responses of public prompt sets (safe responses of MedSafetyBench,
    NIH answers of MedQuAD; train parts only).
    """

    enabled: bool = Field(default=False, description="Run the demonstration stage.")
    cycles: list[int] | None = Field(default=None, description="Cycles that run it (null = every cycle).")
    sources: list[DemoSource] = Field(
        default_factory=lambda: list(DEMO_SOURCES), description="Where demonstrations come from."
    )
    public_prompts: list[DemoPromptSet] = Field(
        default_factory=lambda: [
            DemoPromptSet(source="medsafetybench", limit=160),
            DemoPromptSet(source="medquad", limit=160),
        ],
        description="Public prompt sets whose written responses are demonstrations (train parts only).",
    )
    max_examples: int | None = Field(default=None, ge=1, description="Cap on demonstrations per cycle (seeded).")

    def runs_in(self, cycle: int) -> bool:
        """True when the stage is on for ``cycle``."""
        return self.enabled and (self.cycles is None or cycle in self.cycles)


class DPOSection(TrainSection):
    """DPO (TRL ``DPOTrainer``): pairs of a chosen and a rejected response."""

    loss_type: list[str] | str = Field(
        default="sigmoid",
        description="TRL DPO loss: sigmoid (the paper's), ipo, hinge, robust, ... or a list to combine.",
    )


class KTOSection(TrainSection):
    """KTO (TRL ``KTOTrainer``): single responses labelled desirable or undesirable."""

    desirable_weight: float = Field(
        default=1.0, gt=0.0, description="Weight of desirable examples' loss (raise when they are the fewer)."
    )
    undesirable_weight: float = Field(
        default=1.0, gt=0.0, description="Weight of undesirable examples' loss (raise when they are the fewer)."
    )
