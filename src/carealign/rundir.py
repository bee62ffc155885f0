"""The run directory's contract: every path of an alignment run, and typed records of what it holds.

This is a leaf module (it imports only :mod:`carealign.io` and :mod:`carealign.errors`): the
alignment loop writes a run through it, and the report, the validator ablation, the generator
registry, the review import and the gateway read a run through it, so the layout is spelled in
one place. Layout::

    RUN/
      config.yaml                  the validated config
      manifest.json                AlignManifest: config hash, inputs, versions, judges, stages, policies
      cycle_N/
        samples/                   an evaluation directory (EvalLayout) on the train prompts
        gate.json                  the reliability gate's decision
        reminder.jsonl             reminder-conditioned responses, judged
        sft.jsonl                  demonstration (SFT) rows, when the cycle has a demonstration stage
        dpo.jsonl, kto.jsonl       preference data (TRL conversational format + metadata)
        preferences.json           how many prompts gave pairs, and why not
        {sft,dpo,kto}/adapter/     a LoRA adapter; log.jsonl (training log); train.json (TrainRecord);
        {sft,dpo,kto}/checkpoints/ Trainer checkpoints of a training stage in flight (resumed after a crash)
        validation/{current,dpo,kto}/   evaluation directories on the validation prompts
        selection.json             SelectionRecord: what was promoted and why
        policy/                    the promoted policy (adapter merged), a full checkpoint
      test/{base,final}/           before/after evaluations on held-out prompts (``carealign demo``)
      report.html
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carealign.errors import CarealignError
from carealign.io import write_json_atomic

#: The candidates a cycle trains, in the order they are trained and validated.
CANDIDATES: tuple[str, ...] = ("dpo", "kto")


def now() -> str:
    """The timestamp format of every record (local time with offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ----------------------------------------------------------------------------- paths


class EvalLayout:
    """One evaluation directory (``carealign eval --out``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def responses(self) -> Path:
        """Judged responses, one row per prompt x sample."""
        return self.root / "responses.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def partial(self) -> Path:
        """The generation checkpoint of an evaluation in flight."""
        return self.root / "generations.partial.jsonl"

    @property
    def training_judge_copy(self) -> Path:
        """The samples as the training judge judged them, kept when the gate switched judges."""
        return self.root / "responses.training_judge.jsonl"

    def exists(self) -> bool:
        return self.metrics.exists()


class CycleLayout:
    """The paths of one cycle of an alignment run."""

    def __init__(self, run_root: Path, number: int) -> None:
        self.number = number
        self.run_root = run_root
        self.root = run_root / f"cycle_{number}"

    @property
    def samples(self) -> EvalLayout:
        return EvalLayout(self.root / "samples")

    @property
    def gate(self) -> Path:
        return self.root / "gate.json"

    @property
    def reminder(self) -> Path:
        return self.root / "reminder.jsonl"

    @property
    def preferences(self) -> Path:
        return self.root / "preferences.json"

    def data(self, method: str) -> Path:
        """Training rows of ``method`` (``sft``, ``dpo`` or ``kto``)."""
        return self.root / f"{method}.jsonl"

    def method_dir(self, method: str) -> Path:
        return self.root / method

    def adapter(self, method: str) -> Path:
        return self.root / method / "adapter"

    def train_log(self, method: str) -> Path:
        return self.root / method / "log.jsonl"

    def train_record(self, method: str) -> Path:
        return self.root / method / "train.json"

    def checkpoints(self, method: str) -> Path:
        return self.root / method / "checkpoints"

    def validation(self, name: str) -> EvalLayout:
        """Validation of ``current`` or a candidate."""
        return EvalLayout(self.root / "validation" / name)

    @property
    def sft_policy(self) -> Path:
        """The cycle's starting policy after the demonstration stage (adapter merged); DPO and KTO start here."""
        return self.root / "sft" / "policy"

    @property
    def selection(self) -> Path:
        return self.root / "selection.json"

    @property
    def policy(self) -> Path:
        """The promoted policy of this cycle (a full checkpoint)."""
        return self.root / "policy"

    @property
    def policy_ref(self) -> str:
        """The promoted policy as the manifest names it (relative to the run directory)."""
        return f"cycle_{self.number}/policy"

    def stage(self, name: str) -> str:
        """The manifest key of one of this cycle's stages."""
        return f"cycle_{self.number}/{name}"


class RunLayout:
    """Every path of an alignment run directory, from one place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def cycle(self, number: int) -> CycleLayout:
        return CycleLayout(self.root, number)

    def cycle_numbers(self) -> list[int]:
        """Numbers of the cycle directories present, ascending."""
        return sorted(int(p.name[6:]) for p in self.root.glob("cycle_*") if p.is_dir() and p.name[6:].isdigit())

    def test(self, name: str) -> EvalLayout:
        """A before/after evaluation on held-out prompts (``base`` or ``final``)."""
        return EvalLayout(self.root / "test" / name)

    def resolve(self, ref: str) -> Path:
        """A path named relative to the run directory (as the manifest and records name them)."""
        return self.root / ref

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))

    def is_run(self) -> bool:
        """True when the directory holds an alignment run's manifest."""
        return self.manifest.exists() and not (self.root / "config.json").exists()


# ----------------------------------------------------------------------------- records


class _Record(BaseModel):
    """Records keep fields written by newer versions (``extra="allow"``), so old code reads new runs."""

    model_config = ConfigDict(extra="allow")


class StageRecord(_Record):
    """One stage's state in a manifest, with whatever the stage reported (rows, seconds, ...)."""

    status: str = Field(description="running or done")
    updated: str = Field(default_factory=now)


class CycleRecord(_Record):
    """A cycle's summary in the manifest."""

    policy: str = Field(description="The policy the cycle started from (model spec or run-relative path).")
    promoted: str | None = Field(default=None, description="current, dpo or kto, once selected.")
    reason: str | None = None


class TrainRecord(_Record):
    """``cycle_N/METHOD/train.json``: what one training stage produced."""

    adapter: str | None = Field(default=None, description="Run-relative path of the adapter; None when not trained.")
    examples: int
    steps: int
    seconds: float
    skipped: str | None = None
    final_log: dict[str, Any] = Field(default_factory=dict)
    reference: str | None = Field(default=None, description="base or previous (DPO/KTO); None for SFT.")
    resumed_from_step: int | None = Field(default=None, description="Checkpoint step the training resumed from.")


class SelectionRecord(_Record):
    """``cycle_N/selection.json``: which policy was promoted, why, and the paired comparisons."""

    cycle: int
    policy: str
    promoted: str
    reason: str
    validator: str | None = None
    candidates: dict[str, Any] = Field(default_factory=dict)
    new_policy: str | None = None


class _Manifest(_Record):
    kind: str
    created: str = Field(default_factory=now)
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str = ""
    versions: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, StageRecord] = Field(default_factory=dict)

    _path: Path | None = None
    _omit_when_empty: tuple[str, ...] = ()

    @classmethod
    def read(cls, path: str | Path) -> Any:
        """The manifest at ``path``, or None when there is none; a broken one is a clear error."""
        p = Path(path)
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            m = cls.model_validate(data)
        except (json.JSONDecodeError, ValidationError) as exc:
            raise CarealignError(
                f"{p}: not a carealign manifest this version can read ({str(exc).splitlines()[0]}); "
                "start the run afresh (--overwrite) or use the carealign version that wrote it"
            ) from None
        m._path = p
        return m

    def save(self, path: str | Path | None = None) -> None:
        """Write atomically (to ``path``, or where it was read from)."""
        if path is not None:
            self._path = Path(path)
        if self._path is None:
            raise CarealignError("manifest has no path to save to")
        data = self.model_dump(mode="json")
        for key in self._omit_when_empty:  # fields a run only gains when something happens (as older versions wrote)
            if data.get(key) in (None, {}):
                data.pop(key, None)
        write_json_atomic(self._path, data)

    def stage_done(self, name: str) -> bool:
        stage = self.stages.get(name)
        return stage is not None and stage.status == "done"

    def mark(self, name: str, status: str, **info: Any) -> None:
        """Record a stage's status (``running`` or ``done``) with any details, and save."""
        old = self.stages.get(name)
        data = {**(old.model_dump() if old else {}), **info, "status": status, "updated": now()}
        self.stages[name] = StageRecord.model_validate(data)
        self.save()


class AlignManifest(_Manifest):
    """``RUN/manifest.json`` of an alignment run."""

    kind: str = "align"
    inputs: dict[str, Any] = Field(default_factory=dict)
    base_policy: str = Field(description="Resolved path (or hub id) of the starting policy pi_0.")
    current_policy: str | None = Field(default=None, description="Run-relative path of the latest promoted policy.")
    policies: dict[str, str] = Field(default_factory=dict, description="Policy of each cycle boundary (0 = pi_0).")
    cycles: dict[str, CycleRecord] = Field(default_factory=dict)
    training_judge: str | None = Field(default=None, description="Set when the gate switched the training judge.")
    gate_switches: dict[str, str] = Field(default_factory=dict)
    stopped: str | None = None
    finished: str | None = None

    _omit_when_empty: tuple[str, ...] = ("training_judge", "gate_switches", "stopped", "finished")

    @property
    def policy_model(self) -> str:
        """The configured starting policy's spec."""
        return str(self.config.get("policy_model"))


class EvalManifest(_Manifest):
    """``manifest.json`` of an evaluation directory (``carealign eval --out``, a cycle's samples, a validation)."""

    kind: str = "eval"
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Prompt ids hash, prompt count, model fingerprint."
    )
    policy: dict[str, Any] = Field(default_factory=dict, description="The safety policy's score table.")
    model_identity: str | None = None
    judge_identity: str | None = None


def load_align_manifest(run_dir: str | Path) -> AlignManifest:
    """The manifest of an alignment run directory, or a clear error when it is not one."""
    layout = RunLayout(run_dir)
    try:
        raw = json.loads(layout.manifest.read_text(encoding="utf-8")) if layout.manifest.exists() else None
    except json.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict) or raw.get("kind") != "align":
        what = "no manifest.json" if raw is None else f"manifest.json of kind {raw.get('kind')!r}"
        raise CarealignError(f"{run_dir}: not an alignment run directory ({what}; expected an align manifest.json)")
    manifest = AlignManifest.read(layout.manifest)
    assert manifest is not None
    return manifest


def promoted_policy(run_dir: str | Path) -> str:
    """The model spec/path of a run's latest promoted policy (the base model if none was promoted)."""
    m = load_align_manifest(run_dir)
    current = m.current_policy or m.policy_model
    path = RunLayout(run_dir).resolve(current)
    return str(path) if path.exists() else current


def read_train_record(path: Path) -> TrainRecord:
    return TrainRecord.model_validate_json(path.read_text(encoding="utf-8"))


def read_selection(path: Path) -> SelectionRecord:
    return SelectionRecord.model_validate_json(path.read_text(encoding="utf-8"))
