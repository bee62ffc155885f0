"""What the run report reads from an alignment run directory (layout in :mod:`carealign.align.run`).

:func:`load_run` reads only files inside the run directory, plus ``test/base`` and ``test/final``
when the run was followed by a before/after evaluation on the held-out test split (as
``carealign demo`` does). Any file of an unfinished cycle may be missing. :func:`before_after`
picks the two evaluations the report compares: on the test split when ``test/`` has both, else
the validation outputs of the base policy (``cycle_1/validation/current``) against those of the
last promoted policy, with a note saying that this gain is optimistic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carealign.errors import CarealignError, DataError
from carealign.io import read_jsonl
from carealign.report.formatting import is_num
from carealign.rundir import CANDIDATES, EvalLayout, RunLayout

#: The candidate methods of a cycle, and every policy validated in a cycle.

POLICIES: tuple[str, ...] = ("current", *CANDIDATES)


@dataclass
class Evaluation:
    """One ``carealign eval`` output directory: its metrics.json and judged responses.jsonl."""

    label: str
    path: Path
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]


@dataclass
class Cycle:
    """What one cycle directory holds (any file may be missing in an unfinished cycle)."""

    number: int
    path: Path
    record: dict[str, Any]
    selection: dict[str, Any] | None
    preferences: dict[str, Any] | None
    samples_metrics: dict[str, Any] | None
    train: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    validation: dict[str, Evaluation] = field(default_factory=dict)

    @property
    def promoted(self) -> str | None:
        """The promoted policy (``current``, ``dpo`` or ``kto``), or None while the cycle is unfinished."""
        if self.selection and self.selection.get("promoted"):
            return str(self.selection["promoted"])
        value = self.record.get("promoted")
        return None if value is None else str(value)

    @property
    def reason(self) -> str | None:
        """Why the selection rule chose what it chose."""
        if self.selection and self.selection.get("reason"):
            return str(self.selection["reason"])
        value = self.record.get("reason")
        return None if value is None else str(value)

    def skipped(self, method: str) -> str | None:
        """Why a candidate was not trained, or None when it was (or its train.json is missing)."""
        info = self.train.get(method) or {}
        value = info.get("skipped")
        return None if not value else str(value)

    def candidate_metrics(self, name: str) -> dict[str, Any] | None:
        """Validation metrics of a policy: its metrics.json, else the headline copy in selection.json."""
        if name in self.validation:
            return self.validation[name].metrics
        cands = (self.selection or {}).get("candidates") or {}
        metrics = (cands.get(name) or {}).get("metrics")
        return metrics if isinstance(metrics, dict) else None


@dataclass
class RunData:
    """Everything the report reads from a run directory."""

    path: Path
    manifest: dict[str, Any]
    cycles: list[Cycle]
    test_base: Evaluation | None
    test_final: Evaluation | None

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration as the manifest recorded it (empty when missing)."""
        cfg = self.manifest.get("config")
        return cfg if isinstance(cfg, dict) else {}


def _read_json(path: Path) -> Any:
    """A JSON file's content, or None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"broken JSON ({exc.msg} at line {exc.lineno})", path=path) from None


def _read_dict(path: Path) -> dict[str, Any] | None:
    data = _read_json(path)
    return data if isinstance(data, dict) else None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path, tolerate_torn_tail=True) if path.is_file() else []


def _load_eval(layout: EvalLayout, label: str) -> Evaluation | None:
    metrics = _read_dict(layout.metrics)
    if metrics is None:
        return None
    return Evaluation(label, layout.root, metrics, _read_rows(layout.responses))


def _load_manifest(run: Path) -> dict[str, Any]:
    path = RunLayout(run).manifest
    if not run.is_dir():
        raise CarealignError(f"{run}: not an alignment run directory (no such directory)")
    try:
        data = _read_json(path)
    except DataError as exc:
        raise CarealignError(f"{run}: not an alignment run directory ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != "align":
        what = "no manifest.json" if data is None else f"manifest.json of kind {data.get('kind')!r}"
        if data is not None and not isinstance(data, dict):
            what = "manifest.json is not a JSON object"
        raise CarealignError(f"{run}: not an alignment run directory ({what}; expected an align manifest.json)")
    return data


def _cycle_numbers(run: Path, manifest: Mapping[str, Any]) -> list[int]:
    layout = RunLayout(run)
    numbers = set(layout.cycle_numbers())
    for key in manifest.get("cycles") or {}:
        if str(key).isdigit() and layout.cycle(int(key)).root.is_dir():
            numbers.add(int(key))
    return sorted(numbers)


def _load_cycle(run: Path, number: int, manifest: Mapping[str, Any]) -> Cycle:
    cl = RunLayout(run).cycle(number)
    record = (manifest.get("cycles") or {}).get(str(number)) or {}
    cycle = Cycle(
        number=number,
        path=cl.root,
        record=dict(record),
        selection=_read_dict(cl.selection),
        preferences=_read_dict(cl.preferences),
        samples_metrics=_read_dict(cl.samples.metrics),
    )
    for method in CANDIDATES:
        info = _read_dict(cl.train_record(method))
        if info is not None:
            cycle.train[method] = info
        log = [r for r in _read_rows(cl.train_log(method)) if is_num(r.get("loss"))]
        if log:
            cycle.logs[method] = log
    for name in POLICIES:
        ev = _load_eval(cl.validation(name), f"cycle {number} {name}")
        if ev is not None:
            cycle.validation[name] = ev
    return cycle


def load_run(run_dir: str | Path) -> RunData:
    """Read an alignment run directory; raise :class:`CarealignError` when it is not one."""
    run = Path(run_dir)
    manifest = _load_manifest(run)
    cycles = [_load_cycle(run, n, manifest) for n in _cycle_numbers(run, manifest)]
    return RunData(
        path=run,
        manifest=manifest,
        cycles=cycles,
        test_base=_load_eval(RunLayout(run).test("base"), "base (test)"),
        test_final=_load_eval(RunLayout(run).test("final"), "final (test)"),
    )


@dataclass
class BeforeAfter:
    """The two evaluations the before/after sections compare, and on which split."""

    base: Evaluation | None
    final: Evaluation | None
    on_test: bool
    split: str
    note: str


def before_after(run: RunData) -> BeforeAfter:
    """Base vs final on the test split when ``test/`` has both, else on the validation split."""
    if run.test_base is not None and run.test_final is not None:
        return BeforeAfter(
            run.test_base,
            run.test_final,
            True,
            "test",
            "Held-out test split: no stage of the run (training, validation, selection) saw these prompts.",
        )
    first = run.cycles[0].validation.get("current") if run.cycles else None
    base = None if first is None else Evaluation("base (validation)", first.path, first.metrics, first.rows)
    final: Evaluation | None = None
    source = ""
    for cycle in reversed(run.cycles):
        if cycle.promoted in CANDIDATES and cycle.promoted in cycle.validation:
            ev = cycle.validation[cycle.promoted]
            final = Evaluation("final (validation)", ev.path, ev.metrics, ev.rows)
            source = f"cycle {cycle.number}'s promoted {cycle.promoted.upper()} candidate"
            break
    missing = "" if run.test_base is None and run.test_final is None else " (test/ lacks base or final)"
    note = (
        f"VALIDATION split, because the run has no test evaluation{missing}: base is cycle 1's "
        "current policy, final is "
    )
    if final is None and base is not None:
        final = Evaluation("final = base (validation)", base.path, base.metrics, base.rows)
        note += "the base policy itself, because no candidate was promoted."
    else:
        note += f"{source}."
    note += (
        " The validation prompts were used to choose the promoted policy, so this comparison is optimistic; "
        "evaluate both policies on a held-out split for an unbiased estimate."
    )
    return BeforeAfter(base, final, False, "validation", note)
