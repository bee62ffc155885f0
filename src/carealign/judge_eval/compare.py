"""Judge the same rows with several judges and compare them (``carealign judge agree``).

A judge spec here is any spec :func:`carealign.judge.registry.make_judge` knows (``rules``,
``self``/``llm``, ``llm:MODEL``, ``panel:...``, registered names such as ``classifier``) or
``field:NAME``: the verdicts already stored in column ``NAME`` of the input, compared without
judging again. Their confidences are read from the column named like ``NAME`` with ``verdict``
replaced by ``confidence`` (``verdict`` -> ``confidence``, ``verdict_rules`` -> ``confidence_rules``)
where the rows have it.

:func:`run_agreement` writes ``OUT/judged.jsonl`` (the input rows plus ``verdict_<judge>`` and
``confidence_<judge>`` per judge, and ``needs_review_<judge>``/``votes_<judge>`` for panels),
``OUT/agreement.json`` (:func:`carealign.judge_eval.agreement.agreement_report`) and
``OUT/agreement.html``, each atomically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from carealign.errors import DataError, JudgeError
from carealign.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from carealign.judge.registry import check_judge_spec, make_judge
from carealign.judge_eval.agreement import (
    HUMAN,
    agreement_report,
    confidence_column,
    read_confidences,
    read_harm_levels,
    read_verdicts,
    verdict_column,
)
from carealign.score.policy import SafetyPolicy

FIELD_PREFIX = "field:"
_PANEL_PREFIXES = ("panel:", "panel-weighted:")
#: Specs that judge with the policy model (``--model``).
_SELF_SPECS = ("llm", "self", "llm:self")


@dataclass(frozen=True)
class JudgeColumn:
    """One judge of the comparison: its spec, the sanitised name of its columns, and its identity."""

    spec: str
    name: str
    identity: str = ""

    @property
    def stored_field(self) -> str | None:
        """The input column of a ``field:NAME`` judge, else None."""
        return self.spec.removeprefix(FIELD_PREFIX) if self.spec.startswith(FIELD_PREFIX) else None


def split_judge_specs(values: Sequence[str]) -> list[str]:
    """Judge specs from ``--judges`` values: each value is split on commas, except that a panel spec
    (``panel:...``, ``panel-weighted:...``) takes the rest of its value (its members are comma-separated)."""
    specs: list[str] = []
    for value in values:
        parts = [p.strip() for p in value.split(",")]
        for k, part in enumerate(parts):
            if part.startswith(_PANEL_PREFIXES):
                specs.append(",".join(parts[k:]))
                break
            if part:
                specs.append(part)
    return specs


def sanitize_name(spec: str) -> str:
    """A column-friendly name for a judge spec: runs of other characters than letters, digits, '-'
    and '.' become '_' (``llm:org/model`` -> ``llm_org_model``)."""
    return re.sub(r"[^0-9A-Za-z.\-]+", "_", spec).strip("_") or "judge"


def judge_columns(specs: Sequence[str]) -> list[JudgeColumn]:
    """Check the specs (before any model loads) and name their columns; names that collide get ``_2``, ``_3``.

    Raises :class:`JudgeError` for an unknown or repeated spec.
    """
    out: list[JudgeColumn] = []
    used: set[str] = set()
    seen: set[str] = set()
    for spec in specs:
        if spec in seen:
            raise JudgeError(f"judge {spec!r} given twice")
        seen.add(spec)
        if spec.startswith(FIELD_PREFIX):
            if not spec.removeprefix(FIELD_PREFIX).strip():
                raise JudgeError(f"judge {spec!r}: name the column of stored verdicts, e.g. field:verdict")
        else:
            check_judge_spec(spec)
        base = sanitize_name(spec)
        name, k = base, 2
        while name in used or name == HUMAN:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        out.append(JudgeColumn(spec, name))
    return out


def needs_policy_model(specs: Sequence[str]) -> bool:
    """Whether some spec (or panel member) is the policy judging itself."""
    for spec in specs:
        members = spec.split(":", 1)[1].split(",") if spec.startswith(_PANEL_PREFIXES) else [spec]
        if any(m.strip() in _SELF_SPECS for m in members):
            return True
    return False


def check_rows(rows: Sequence[dict[str, Any]], judges: Sequence[JudgeColumn], human: str | None, source: str) -> None:
    """Check every row before judging: prompt and response text, harm level, stored verdicts, human labels.

    Raises :class:`DataError` naming the file, row and field.
    """
    if not rows:
        raise DataError("no rows to judge", path=source)
    for i, row in enumerate(rows, start=1):
        for key in ("prompt", "response"):
            if not isinstance(row.get(key), str):
                raise DataError(f"missing or non-text field; every row needs '{key}'", path=source, row=i, field=key)
    read_harm_levels(rows, source=source)
    for j in judges:
        if j.stored_field is not None:
            read_verdicts(rows, j.stored_field, source=source, what=f"stored verdict (judge {j.spec})")
            conf = _stored_confidence_field(j.stored_field, rows)
            if conf is not None:
                read_confidences(rows, conf, source=source)
    if human:
        read_verdicts(rows, human, source=source, what="human verdict")


def _stored_confidence_field(field: str, rows: Sequence[dict[str, Any]]) -> str | None:
    if "verdict" not in field:
        return None
    candidate = field.replace("verdict", "confidence", 1)
    return candidate if any(candidate in r for r in rows) else None


def judge_all(
    rows: Sequence[dict[str, Any]],
    judges: Sequence[JudgeColumn],
    *,
    scorer: Any | None = None,
    policy: SafetyPolicy | None = None,
    console: Console | None = None,
    source: str = "input",
    **model_kwargs: Any,
) -> tuple[list[dict[str, Any]], list[JudgeColumn]]:
    """The rows with ``verdict_<name>``/``confidence_<name>`` per judge, and the judges with their identities.

    ``scorer`` is the policy model (for ``self``/``llm`` judges); ``model_kwargs`` go to model loading.
    """
    from carealign.evaluate import judge_rows

    out = [dict(r) for r in rows]
    # Build every judge before judging with any, so a model that fails to load fails fast.
    built = {j.name: make_judge(j.spec, policy=scorer, **model_kwargs) for j in judges if j.stored_field is None}
    done: list[JudgeColumn] = []
    for j in judges:
        vcol, ccol = verdict_column(j.name), confidence_column(j.name)
        if j.stored_field is not None:
            verdicts = read_verdicts(rows, j.stored_field, source=source)
            conf_field = _stored_confidence_field(j.stored_field, rows)
            confs = read_confidences(rows, conf_field, source=source) if conf_field else [None] * len(rows)
            for row, v, c in zip(out, verdicts, confs, strict=True):
                row[vcol], row[ccol] = v.value, c
            stored_ids = (
                sorted({str(r["judge"]) for r in rows if r.get("judge")}) if j.stored_field == "verdict" else []
            )
            identity = j.spec + (f" ({', '.join(stored_ids)})" if stored_ids else "")
            done.append(JudgeColumn(j.spec, j.name, identity))
            continue
        judge = built[j.name]
        bare = [{"prompt": r["prompt"], "response": r["response"], "harm_level": r.get("harm_level")} for r in rows]
        judged = judge_rows(bare, judge, policy, console=console, source=source)
        for row, res in zip(out, judged, strict=True):
            row[vcol], row[ccol] = res["verdict"], res["confidence"]
            if "needs_review" in res:
                row[f"needs_review_{j.name}"], row[f"votes_{j.name}"] = res["needs_review"], res["votes"]
        done.append(JudgeColumn(j.spec, j.name, judge.identity))
    return out, done


@dataclass
class AgreementResult:
    """What :func:`run_agreement` wrote and computed."""

    out_dir: Path
    report: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def paths(self) -> dict[str, Path]:
        return {
            k: self.out_dir / f
            for k, f in (("rows", "judged.jsonl"), ("json", "agreement.json"), ("html", "agreement.html"))
        }


def run_agreement(
    input_path: str | Path,
    specs: Sequence[str],
    out_dir: str | Path,
    *,
    human_field: str | None = None,
    model: str | None = None,
    policy: SafetyPolicy | None = None,
    dtype: str = "auto",
    device: str = "auto",
    n_resamples: int = 1000,
    seed: int = 0,
    console: Console | None = None,
) -> AgreementResult:
    """Judge ``input_path``'s rows with every judge spec, compare them and write the three files into ``out_dir``.

    Everything that can be checked is checked before a model loads: the specs, every row's
    prompt/response/harm level, stored verdict columns and human labels. Raises
    :class:`DataError` / :class:`JudgeError` with the file, row and field at fault.
    """
    source = str(input_path)
    judges = judge_columns(specs)
    if len(judges) < (1 if human_field else 2):
        raise JudgeError(
            f"give at least two judges to compare (or one judge and --human FIELD); got {len(judges)}: "
            + (", ".join(specs) or "none")
        )
    rows = read_jsonl(input_path)
    check_rows(rows, judges, human_field, source)
    policy = policy or SafetyPolicy.cares()
    scorer = None
    spec_list = [j.spec for j in judges if j.stored_field is None]
    if needs_policy_model(spec_list) and model is None:
        raise JudgeError(
            "a self/llm judge is the policy judging itself; pass --model (the model that wrote the responses)"
        )
    # Load the policy model only where a judge uses it: self-judging, or llm:MODEL naming the same model.
    if model is not None and (needs_policy_model(spec_list) or any(f"llm:{model}" in s for s in spec_list)):
        from carealign.generate.registry import load_generator

        scorer = load_generator(model, dtype=dtype, device=device)
    judged, judges = judge_all(
        rows, judges, scorer=scorer, policy=policy, console=console, source=source, dtype=dtype, device=device
    )
    report = agreement_report(
        judged, [j.name for j in judges], human_field, policy, n_resamples=n_resamples, seed=seed, source=source
    )
    report["input"] = source
    for j in judges:
        report["judges"][j.name].update(spec=j.spec, identity=j.identity)
    from carealign.report.agreement import write_agreement_html

    out = Path(out_dir)
    write_jsonl_atomic(out / "judged.jsonl", judged)
    write_json_atomic(out / "agreement.json", report)
    write_agreement_html(report, out / "agreement.html")
    return AgreementResult(out, report, judged)
