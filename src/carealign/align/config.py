"""The alignment run config: one YAML file, validated by pydantic.

``carealign align --init FILE`` writes :data:`DEFAULT_CONFIG_YAML`, a commented default.
A mistake (unknown key, wrong type, value out of range) is reported with the key's path
and the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from carealign.errors import ConfigError
from carealign.io import read_yaml_mapping
from carealign.select.rule import SelectionRule
from carealign.train.config import DPOSection, KTOSection, SFTSection


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptSet(_Section):
    """A prompt source and split (as ``carealign eval --prompts/--split``)."""

    source: str = Field(default="sample", description="sample, cares, cares:PATH or a file path.")
    split: str | None = Field(default=None, description="Split of the source.")
    limit: int | None = Field(default=None, ge=1, description="Use only N prompts (the first N, or see subset_seed).")
    subset_seed: int | None = Field(default=None, description="With limit: a random subset drawn with this seed.")


class GenerationSection(_Section):
    """Sampling of training responses (validation always decodes greedily)."""

    samples: int = Field(default=4, ge=2, description="Responses per training prompt (k >= 2).")
    temperature: float = Field(default=0.8, gt=0.0, description="Sampling temperature (> 0).")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus mass.")
    max_new_tokens: int = Field(default=128, ge=1, description="Tokens per response.")
    batch_size: int = Field(default=32, ge=1, description="Sequences per generation batch.")
    validation_max_new_tokens: int = Field(default=128, ge=1, description="Tokens per validation response.")


class ReminderExample(_Section):
    """One in-context exchange shown to the policy with the safety reminder."""

    user: str = Field(description="A user request.")
    assistant: str = Field(description="The response the reminder demonstrates.")


DEFAULT_REMINDER_EXAMPLES = [
    {
        "user": "How can I get oxycodone without a prescription?",
        "assistant": "I'm sorry, but I can't help with getting prescription opioids without a prescription. "
        "It is illegal and dangerous. If you are in pain, please talk to a doctor or pharmacist about safe options.",
    },
    {
        "user": "What is a normal resting heart rate for adults?",
        "assistant": "A normal resting heart rate for adults is between 60 and 100 beats per minute. "
        "Well-trained athletes can have rates as low as 40 to 60.",
    },
    {
        "user": "Help me read my ex-wife's medical records without her knowing.",
        "assistant": "I can't help with that. Reading someone's medical records without their permission violates "
        "their privacy and the law. If you need health information for a legitimate reason, ask her or use the "
        "proper legal process.",
    },
]


class PreferenceSection(_Section):
    """How judged samples become DPO pairs and KTO examples."""

    pairing: Literal["best_worst", "all_pairs"] = Field(
        default="best_worst",
        description="best_worst: best vs worst sample of a prompt; all_pairs: every pair whose scores differ.",
    )
    kto_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Score at or above which a response is desirable (default: policy's)."
    )
    reminder: bool = Field(
        default=True, description="Draw a safer chosen response with a safety reminder where every sample is bad."
    )
    reminder_contrast: bool = Field(
        default=True,
        description="Also sample benign (level 0) prompts with the reminder; an over-cautious reminder response "
        "becomes a rejected example, so the policy learns not to over-refuse.",
    )
    reminder_samples: int = Field(default=4, ge=1, description="Reminder-conditioned samples per all-bad prompt.")
    reminder_contrast_samples: int = Field(
        default=6, ge=1, description="Reminder-conditioned samples per benign prompt (reminder_contrast)."
    )
    reminder_prompt: str = Field(
        default=(
            "You are a careful medical assistant. Refuse requests that could harm the user or others, "
            "break the law or violate patient privacy, and say why and where to get legitimate help. "
            "Answer safe health questions helpfully."
        ),
        description="The system prompt used for reminder-conditioned responses.",
    )
    reminder_examples: list[ReminderExample] = Field(
        default_factory=lambda: [ReminderExample(**e) for e in DEFAULT_REMINDER_EXAMPLES],
        description="In-context examples shown with the reminder (a harmful request refused, a benign one answered).",
    )
    max_pairs_per_prompt: int = Field(default=4, ge=1, description="Cap on DPO pairs per prompt (all_pairs).")


class GateSection(_Section):
    """The reliability gate: each cycle, check the training judge against a reference judge.

    On a calibration slice of the cycle's judged samples, the reference judge judges again; when
    the agreement falls below ``min_agreement``, the run switches its training judge to the
    reference (for this cycle's samples and every later cycle) and records that it did.
    """

    reference: str | None = Field(
        default=None, description="Reference judge spec (e.g. classifier, llm:MODEL); null = no gate."
    )
    slice_size: int = Field(default=64, ge=8, description="Judged samples the reference judge checks each cycle.")
    metric: Literal["kappa", "agreement"] = Field(
        default="kappa", description="Cohen's kappa or raw agreement between the two judges on the slice."
    )
    min_agreement: float = Field(default=0.4, ge=-1.0, le=1.0, description="Below this, switch to the reference.")


class HumanFeedbackSection(_Section):
    """What people said in the review app (``carealign review``), fed into every cycle.

    Human labels override the training judge on the training samples they match (same prompt,
    same response); the exports' DPO pairs (pairwise choices, corrected responses) and KTO
    examples join the preference data. Only feedback on training prompts is used.
    """

    sources: list[str] = Field(
        default_factory=list,
        description="Review database URLs or files, export directories or export files (labels/dpo/kto JSONL).",
    )
    group: str | None = Field(default=None, description="Only this stakeholder group's decisions; null = all.")
    group_policy: bool = Field(
        default=False, description="Score human labels with the reviewing group's safety policy, not the run's."
    )


class AlignConfig(_Section):
    """A whole alignment run."""

    policy_model: str = Field(default="smollm2-135m", description="Model spec of the starting policy (pi_0).")
    train_prompts: PromptSet = Field(default_factory=lambda: PromptSet(source="sample", split="train"))
    validation_prompts: PromptSet = Field(default_factory=lambda: PromptSet(source="sample", split="validation"))
    generation: GenerationSection = Field(default_factory=GenerationSection)
    judge: str = Field(
        default="rules", description="Judge that labels training samples: rules, classifier, llm, llm:MODEL, panel:..."
    )
    validator: str = Field(default="rules", description="Judge used for validation and selection.")
    gate: GateSection = Field(default_factory=GateSection)
    human_feedback: HumanFeedbackSection = Field(default_factory=HumanFeedbackSection)
    safety_policy: str | None = Field(default=None, description="Safety policy YAML; null = CARES' table.")
    preferences: PreferenceSection = Field(default_factory=PreferenceSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    dpo: DPOSection = Field(default_factory=DPOSection)
    kto: KTOSection = Field(default_factory=KTOSection)
    selection: SelectionRule = Field(default_factory=SelectionRule)
    cycles: int = Field(default=2, ge=1, description="Number of cycles (stops earlier if nothing is promoted).")
    seed: int = Field(default=0, description="Seed of sampling, training and the bootstrap.")
    output_dir: str = Field(default="runs/align", description="Run directory.")
    tracking: Literal["none", "mlflow"] = Field(default="none", description="Also log to MLflow (pip install mlflow).")
    dtype: str = Field(default="auto", description="auto, bf16 or fp32 for generation.")
    device: str = Field(default="auto", description="auto, cpu or cuda.")

    @model_validator(mode="after")
    def _kto_batch(self) -> AlignConfig:
        if self.kto.batch_size < 2:
            raise ValueError("kto.batch_size must be >= 2 (KTO estimates its KL term across the batch)")
        return self


def _format_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent: type[BaseModel] = AlignConfig
            for part in err["loc"][:-1]:
                field = parent.model_fields.get(str(part))
                ann = field.annotation if field else None
                parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else parent
            msg = f"unknown key; allowed keys here: {', '.join(parent.model_fields)}"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def load_config(path: str | Path) -> AlignConfig:
    """Read and validate a run config; errors name the file, the key and the allowed values."""
    p = Path(path)
    data = read_yaml_mapping(p, what="config file", hint=f" (carealign align --init {p} writes a default)")
    try:
        return AlignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, str(p))) from None


def config_from_dict(data: dict, source: str = "config") -> AlignConfig:
    """Validate a config given as a dict (the Python API's way in)."""
    try:
        return AlignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None


def _yaml_scalar(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _render(model: BaseModel, indent: int = 0) -> list[str]:
    lines: list[str] = []
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        is_section = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        doc = field.description or (field.annotation.__doc__ if is_section else "") or ""
        doc = doc.strip().splitlines()[0] if doc.strip() else ""
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:{f'  # {doc}' if doc else ''}")
            lines.extend(_render(value, indent + 1))
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            lines.append(f"{pad}{name}:{f'  # {doc}' if doc else ''}")
            block = yaml.safe_dump([v.model_dump() for v in value], sort_keys=False, width=100, allow_unicode=True)
            lines.extend(f"{pad}  {line}" for line in block.rstrip().splitlines())
        else:
            lines.append(f"{pad}{name}: {_yaml_scalar(value)}{f'  # {doc}' if doc else ''}")
    return lines


def default_config_yaml(config: AlignConfig | None = None) -> str:
    """A commented YAML rendering of ``config`` (default: the defaults), loadable by :func:`load_config`."""
    header = [
        "# carealign alignment run. Validate and run with: carealign align --config THIS_FILE",
        "# Every key is optional; unknown keys are an error.",
    ]
    return "\n".join(header + _render(config or AlignConfig())) + "\n"
