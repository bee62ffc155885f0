"""Settings of one LoRA preference training run (the same fields for DPO and KTO)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainSection(BaseModel):
    """LoRA preference training (the same fields for DPO and KTO)."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(default=0.1, gt=0.0, description="Strength of the KL anchor to the reference.")
    learning_rate: float = Field(default=5e-4, gt=0.0, description="AdamW learning rate (LoRA wants ~1e-4-1e-3).")
    epochs: float = Field(default=1.0, gt=0.0, description="Passes over the preference data (if max_steps unset).")
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
    reference: Literal["base", "previous"] = Field(
        default="previous", description="Reference model: base (pi_0) or previous (the policy this cycle starts from)."
    )
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0, description="Share of steps with a rising learning rate.")
    logging_steps: int = Field(default=1, ge=1, description="Log loss, rewards and KL every N steps.")
