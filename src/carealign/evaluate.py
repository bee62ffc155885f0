"""Safety evaluation end to end: load prompts, generate, judge, score, report.

Python API::

    from carealign import EvalConfig, evaluate
    result = evaluate(EvalConfig(model="smollm2-135m", prompts="sample", split="test"), "runs/eval")
    print(result.metrics["safety_score"])

Output directory: ``responses.jsonl`` (one row per prompt x sample), ``metrics.json``
and ``manifest.json``. Generation is checkpointed per chunk in
``generations.partial.jsonl``, so an interrupted evaluation started again with the same
settings resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich import box
from rich.console import Console
from rich.table import Table

from carealign.data import PromptRecord, load_prompts
from carealign.domain import Verdict
from carealign.errors import CarealignError, DataError
from carealign.generate import GenerationConfig, load_generator
from carealign.generate.registry import model_fingerprint
from carealign.io import append_jsonl, read_jsonl, write_json_atomic, write_jsonl_atomic
from carealign.judge import Judge, JudgeItem, make_judge
from carealign.judge.registry import check_judge_spec
from carealign.manifest import library_versions, sha256_json
from carealign.progress import stage_progress
from carealign.rundir import EvalLayout, EvalManifest
from carealign.score import SafetyPolicy, compute_metrics, load_policy


class EvalConfig(BaseModel):
    """Settings of one evaluation. ``carealign eval``'s options are these fields (a test checks they match)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="smollm2-135m", description="Model spec of the policy.")
    prompts: str = Field(default="sample", description="sample, medsafetybench, medquad, cares, cares:PATH or a file.")
    split: str | None = Field(default=None, description="Split of the prompt set (default test).")
    judge: str = Field(default="rules", description="Judge spec: rules, classifier, panel:A,B, llm (self), llm:MODEL.")
    samples: int = Field(default=1, ge=1, description="Responses per prompt.")
    limit: int | None = Field(default=None, ge=1, description="Evaluate at most this many prompts.")
    subset_seed: int | None = Field(
        default=None, description="With limit: draw the prompts at random with this seed, not the first N."
    )
    max_new_tokens: int = Field(default=256, ge=1, description="Tokens per response.")
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy; > 0 samples.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus mass when sampling.")
    seed: int = Field(default=0, description="Seed of sampling and bootstrap.")
    system_prompt: str | None = Field(default=None, description="System message for the policy.")
    policy: str | None = Field(default=None, description="Safety policy YAML (default CARES).")
    batch_size: int = Field(default=32, ge=1, description="Sequences per generation batch.")
    dtype: str = Field(default="auto", description="auto, bf16, fp16 or fp32.")
    device: str = Field(default="auto", description="auto, cpu or cuda[:N].")
    n_resamples: int = Field(default=1000, ge=1, description="Bootstrap resamples for intervals.")

    def generation(self) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            samples=self.samples,
            seed=self.seed,
            system_prompt=self.system_prompt,
        )


@dataclass
class EvalResult:
    """What an evaluation produced."""

    out_dir: Path
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    wall_seconds: float
    generated_tokens: int


#: Columns :func:`judge_rows` adds; :func:`strip_judgements` removes them to judge rows again.
JUDGEMENT_COLUMNS: tuple[str, ...] = ("verdict", "confidence", "judge", "score", "needs_review", "votes")


def strip_judgements(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``rows`` without a judge's columns, ready for another judge."""
    return [{k: v for k, v in r.items() if k not in JUDGEMENT_COLUMNS} for r in rows]


def judge_rows(
    rows: Sequence[dict[str, Any]],
    judge: Judge,
    policy: SafetyPolicy | None = None,
    *,
    console: Console | None = None,
    chunk: int = 64,
    source: str = "input",
) -> list[dict[str, Any]]:
    """Add ``verdict``, ``confidence`` and ``judge`` (and ``score`` where ``harm_level`` is set).

    Rows need ``prompt`` and ``response``; other fields are kept as they are.
    """
    for i, row in enumerate(rows, start=1):
        for key in ("prompt", "response"):
            if not isinstance(row.get(key), str):
                raise DataError(f"missing or non-text field; every row needs '{key}'", path=source, row=i, field=key)
        if row.get("harm_level") is not None:
            lv = row["harm_level"]
            if not isinstance(lv, int) or isinstance(lv, bool) or not 0 <= lv <= 3:
                raise DataError(f"harm level {lv!r}; expected 0, 1, 2 or 3", path=source, row=i, field="harm_level")
    policy = policy or SafetyPolicy.cares()
    out: list[dict[str, Any]] = []
    with stage_progress(f"judge ({judge.identity})", len(rows), unit="verdicts", console=console) as bar:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            items = [JudgeItem(r["prompt"], r["response"], r.get("harm_level")) for r in part]
            for row, j in zip(part, judge.judge(items), strict=True):
                new = dict(row)
                new["verdict"] = j.verdict.value
                new["confidence"] = round(float(j.confidence), 4)
                new["judge"] = j.judge
                if j.votes is not None or j.needs_review:  # judges made of several (panel)
                    new.update(needs_review=j.needs_review, votes=j.votes)
                if "harm_level" in row:
                    new["score"] = policy.score(row.get("harm_level"), j.verdict)
                out.append(new)
            bar.advance(len(part))
    return out


def evaluate(
    config: EvalConfig,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    restart_on_mismatch: bool = False,
    console: Console | None = None,
    generator: Any | None = None,
    judge: Judge | None = None,
) -> EvalResult:
    """Run a safety evaluation and write its artifacts into ``out_dir``.

    An evaluation already in ``out_dir`` with the same settings (and model files) is resumed.
    One with other settings is an error, unless ``overwrite`` (always start afresh) or
    ``restart_on_mismatch`` (start afresh only then; used by pipelines that own ``out_dir``).
    ``generator`` and ``judge`` may be passed to reuse loaded models; by default they are
    built from ``config.model`` and ``config.judge``.
    """
    console = console or Console(stderr=True)
    t0 = time.perf_counter()
    out = Path(out_dir)
    policy = load_policy(config.policy)
    if judge is None:
        check_judge_spec(config.judge)
    gen_cfg = config.generation()
    split = config.split or ("test" if config.prompts in ("sample", "cares") else None)
    records = load_prompts(config.prompts, split, limit=config.limit, subset_seed=config.subset_seed)

    manifest = _open_manifest(
        out, config, records, policy, overwrite=overwrite, restart_on_mismatch=restart_on_mismatch
    )

    if generator is None:
        console.print(f"loading model [bold]{config.model}[/]")
        generator = load_generator(config.model, dtype=config.dtype, device=config.device, batch_size=config.batch_size)
    if judge is None:
        judge = make_judge(config.judge, policy=generator, dtype=config.dtype, device=config.device)
    manifest.model_identity, manifest.judge_identity = generator.identity, judge.identity
    manifest.save()

    gen_rows, n_tokens = _generate_stage(records, generator, gen_cfg, out, manifest, console)
    judged = judge_rows(gen_rows, judge, policy, console=console)
    write_jsonl_atomic(EvalLayout(out).responses, judged)
    manifest.mark("judge", "done", judge=judge.identity, rows=len(judged))

    metrics = compute_metrics(judged, n_resamples=config.n_resamples, seed=config.seed)
    metrics.update(
        model=generator.identity,
        judge=judge.identity,
        policy=policy.name,
        prompts=config.prompts,
        split=split,
        samples_per_prompt=config.samples,
    )
    write_json_atomic(EvalLayout(out).metrics, metrics)
    wall = time.perf_counter() - t0
    manifest.mark("metrics", "done", wall_seconds=round(wall, 1))
    EvalLayout(out).partial.unlink(missing_ok=True)
    print_summary(metrics, console=console)
    return EvalResult(out_dir=out, rows=judged, metrics=metrics, wall_seconds=wall, generated_tokens=n_tokens)


def _open_manifest(
    out: Path,
    config: EvalConfig,
    records: list[PromptRecord],
    policy: SafetyPolicy,
    *,
    overwrite: bool,
    restart_on_mismatch: bool = False,
) -> EvalManifest:
    cfg = config.model_dump()
    layout = EvalLayout(out)
    existing = EvalManifest.read(layout.manifest)
    inputs = {
        "prompt_ids_hash": sha256_json([r.id for r in records]),
        "n_prompts": len(records),
        "model_fingerprint": model_fingerprint(config.model),
    }
    if existing is not None and not overwrite:
        same = existing.config_hash == sha256_json(cfg) and existing.inputs == inputs
        if not same and restart_on_mismatch:
            overwrite = True
        elif not same:
            raise CarealignError(
                f"{out} already holds an evaluation with other settings (or of a model that has changed since); "
                "choose another --out or pass --overwrite"
            )
        if same:
            return existing
    if overwrite:
        for path in (layout.responses, layout.metrics, layout.partial):
            path.unlink(missing_ok=True)
    manifest = EvalManifest(
        config=cfg, config_hash=sha256_json(cfg), versions=library_versions(), inputs=inputs, policy=policy.to_table()
    )
    manifest.save(layout.manifest)
    return manifest


def _generate_stage(
    records: list[PromptRecord],
    generator: Any,
    gen_cfg: GenerationConfig,
    out: Path,
    manifest: EvalManifest,
    console: Console,
) -> tuple[list[dict[str, Any]], int]:
    """Generate every (prompt, sample) not yet in the checkpoint; return all rows in prompt order."""
    layout = EvalLayout(out)
    partial = layout.partial
    if manifest.stage_done("generate") and layout.responses.exists():
        rows = read_jsonl(layout.responses)
        return [{k: v for k, v in r.items() if k not in ("verdict", "confidence", "judge", "score")} for r in rows], 0
    done: dict[str, dict[int, dict[str, Any]]] = {}
    if partial.exists():
        for r in read_jsonl(partial, tolerate_torn_tail=True):
            done.setdefault(r["prompt_id"], {})[r["sample"]] = r
        # Rewrite without a torn last line, so new rows never append onto a broken one.
        write_jsonl_atomic(partial, [r for per in done.values() for r in per.values()])
    todo = [r for r in records if len(done.get(r.id, [])) < gen_cfg.samples]
    if done:
        console.print(f"resuming: {len(records) - len(todo)}/{len(records)} prompts already generated")
    manifest.mark("generate", "running")
    # Longest first, in chunks: each chunk is checkpointed, so a crash loses one chunk at most.
    todo.sort(key=lambda r: -len(r.prompt))
    chunk = max(1, getattr(generator, "batch_size", 32) // (1 if gen_cfg.greedy else gen_cfg.samples)) * 4
    n_tokens = 0
    with stage_progress(
        f"generate ({generator.identity})", len(records), unit="prompts", console=console, done=len(records) - len(todo)
    ) as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            cfg = GenerationConfig(**{**asdict(gen_cfg), "seed": gen_cfg.seed + 1009 * _chunk_key(part)})
            outs = generator.generate([r.prompt for r in part], cfg, progress=lambda n, t: bar.advance(n, t))
            new_rows = [
                _response_row(rec, s, comp.text, comp.n_tokens)
                for rec, comps in zip(part, outs, strict=True)
                for s, comp in enumerate(comps)
            ]
            append_jsonl(partial, new_rows)
            for row in new_rows:
                done.setdefault(row["prompt_id"], {})[row["sample"]] = row
            n_tokens += sum(r["n_tokens"] for r in new_rows)
    rows = []
    for rec in records:
        rows.extend(done[rec.id][s] for s in range(gen_cfg.samples))
    manifest.mark("generate", "done", rows=len(rows), generated_tokens=n_tokens)
    return rows, n_tokens


def _chunk_key(part: list[PromptRecord]) -> int:
    """A seed offset that depends on the chunk's prompts, not on its position (stable on resume)."""
    return int(sha256_json([r.id for r in part])[:6], 16)


def _response_row(rec: PromptRecord, sample: int, text: str, n_tokens: int) -> dict[str, Any]:
    return {
        "prompt_id": rec.id,
        "prompt": rec.prompt,
        "harm_level": rec.harm_level,
        "method": rec.method,
        "principle": rec.principle,
        "base_prompt_id": rec.base_prompt_id,
        "sample": sample,
        "response": text,
        "n_tokens": n_tokens,
    }


def _fmt(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return "-" if value is None else f"{value:.2f}"


def _ci(metrics: dict[str, Any], name: str) -> str:
    interval = metrics.get(f"{name}_ci")
    return f"{interval[0]:.2f}-{interval[1]:.2f}" if interval else "-"


def print_summary(metrics: dict[str, Any], *, console: Console | None = None, title: str | None = None) -> None:
    """A table of the main metrics, overall and by harm level (intervals are in metrics.json)."""
    console = console or Console()
    table = Table(
        title=title or f"{metrics.get('model', '')} judged by {metrics.get('judge', '')}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("subset", "n", "safety", "95% CI", "ref 2-3", "ref 0", "caut 0", "unsc"):
        table.add_column(col, justify="left" if col == "subset" else "right", no_wrap=True)

    def add(label: str, m: dict[str, Any]) -> None:
        table.add_row(
            label,
            str(m["n"]),
            _fmt(m, "safety_score"),
            _ci(m, "safety_score"),
            _fmt(m, "harmful_refusal_rate"),
            _fmt(m, "erroneous_refusal_rate"),
            _fmt(m, "over_caution_rate"),
            _fmt(m, "unscored_rate"),
        )

    add("all", metrics)
    for level, m in metrics.get("by_harm_level", {}).items():
        add(f"level {level}", m)
    console.print(table)
    counts = metrics.get("verdict_counts", {})
    console.print("verdicts: " + ", ".join(f"{v} {counts.get(v, 0)}" for v in (x.value for x in Verdict)))
    console.print(
        "safety = mean Safety Score (95% bootstrap CI); ref 2-3 = harmful refusal rate; "
        "ref 0 = erroneous refusal rate; caut 0 = over-caution rate; unsc = unscored rate",
        style="dim",
    )
