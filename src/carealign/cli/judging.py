"""``carealign judge``: judge responses; ``agree`` (judges vs each other and people), ``train`` and ``distill``
(the fine-tuned judge) and ``ablate`` (would another validator promote another policy?)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from carealign.cli import app, console, user_errors
from carealign.cli.options import JudgeOpt, PolicyOpt
from carealign.errors import ConfigError, DataError
from carealign.evaluate import judge_rows
from carealign.generate.registry import load_generator
from carealign.io import read_jsonl, write_jsonl_atomic
from carealign.judge import make_judge
from carealign.manifest import sha256_file
from carealign.score import load_policy

judge_app = typer.Typer(
    help="Judge responses (Accept / Caution / Refuse / Unscored).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(judge_app, name="judge")


@judge_app.callback()
@user_errors
def judge_cmd(
    ctx: typer.Context,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSONL rows with 'prompt' and 'response'.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output JSONL file.")] = None,
    judge: JudgeOpt = "rules",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model that wrote the responses (for --judge llm).")
    ] = None,
    policy: PolicyOpt = None,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (LLM judges).")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (LLM judges).")] = "auto",
) -> None:
    """Add verdict, confidence and judge (and score, where rows carry harm_level) to JSONL rows."""
    if ctx.invoked_subcommand is not None:
        return
    if input is None or out is None:
        console.print(ctx.get_help())
        console.print("[bold red]error:[/] --input and --out are required")
        raise typer.Exit(2)
    rows = read_jsonl(input)
    policy_obj = load_policy(policy)
    scorer = load_generator(model, dtype=dtype, device=device) if model else None
    the_judge = make_judge(judge, policy=scorer, dtype=dtype, device=device)
    judged = judge_rows(rows, the_judge, policy_obj, console=console, source=str(input))
    write_jsonl_atomic(out, judged)
    counts: dict[str, int] = {}
    for r in judged:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    console.print(f"wrote [bold]{out}[/]: {len(judged)} rows judged by {the_judge.identity}: {json.dumps(counts)}")


@judge_app.command("agree")
@user_errors
def judge_agree_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL rows with 'prompt' and 'response'.")],
    judges: Annotated[
        list[str],
        typer.Option(
            "--judges",
            "-J",
            help="Comma-separated judge specs: rules, self/llm (needs --model), llm:MODEL, classifier, a registered "
            "name, or field:NAME (the verdicts stored in column NAME). A panel:... spec takes the rest of its "
            "value; repeat --judges for more.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    human: Annotated[
        str | None, typer.Option("--human", help="Column of human verdicts to score every judge against.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model that wrote the responses (for self/llm judges).")
    ] = None,
    policy: PolicyOpt = None,
    n_resamples: Annotated[int, typer.Option(min=1, help="Bootstrap resamples of the intervals.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (LLM judges).")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (LLM judges).")] = "auto",
) -> None:
    """Judge the rows with several judges and measure how far they agree (confusion matrices, Cohen's kappa),
    which is stricter by harm level and, with --human, each judge's accuracy and calibration.

    Writes OUT/judged.jsonl, OUT/agreement.json and OUT/agreement.html.
    """
    from carealign.judge_eval.compare import run_agreement, split_judge_specs

    result = run_agreement(
        input,
        split_judge_specs(judges),
        out,
        human_field=human,
        model=model,
        policy=load_policy(policy),
        dtype=dtype,
        device=device,
        n_resamples=n_resamples,
        seed=seed,
        console=console,
    )
    report = result.report
    table = Table(title=f"agreement on {report['n_rows']} rows")
    for col in ("judge A", "judge B", "compared", "unscored", "agreement", "kappa (95% CI)"):
        table.add_column(col, justify="left" if col.startswith("judge") else "right", no_wrap=not col.startswith("j"))
    for p in report["pairwise"]:
        kappa = "n/a" if p["kappa"] is None else f"{p['kappa']:.3f}"
        if p["kappa_ci"]:
            kappa += f" [{p['kappa_ci'][0]:.2f}, {p['kappa_ci'][1]:.2f}]"
        agreement = "n/a" if p["raw_agreement"] is None else f"{100 * p['raw_agreement']:.1f}%"
        table.add_row(p["a"], p["b"], str(p["n_compared"]), str(p["n_unscored"]), agreement, kappa)
    if report["pairwise"]:
        console.print(table)
    for s in report["strictness"]:
        console.print(f"- {s['statement']}", highlight=False, style=None if s["clear"] else "dim")
    for name, h in ((report.get("human") or {}).get("judges") or {}).items():
        acc = "n/a" if h["accuracy"] is None else f"{100 * h['accuracy']:.1f}%"
        f1 = "n/a" if h["macro_f1"] is None else f"{h['macro_f1']:.3f}"
        ece = "n/a" if not h["calibration"] else f"{h['calibration']['ece']:.3f}"
        console.print(f"{name} vs human: accuracy {acc}, macro-F1 {f1}, ECE {ece}", highlight=False)
    paths = result.paths
    console.print(f"wrote [bold]{paths['rows']}[/], [bold]{paths['json']}[/] and [bold]{paths['html']}[/]")


KIND_HELP = (
    "encoder (fine-tune MiniLM on the (prompt, response) pairs) | features (the frozen-feature model, fast to train)."
)


def _encoder_settings(
    max_length: int, context_tokens: int, layers: int, epochs: float, seed: int, quantize: str, **more: Any
) -> Any:
    from carealign.classify import EncoderSettings

    try:
        return EncoderSettings(
            max_length=max_length, context_tokens=context_tokens, layers=layers, epochs=epochs, seed=seed,
            quantize=quantize, **more,  # type: ignore[arg-type]
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _step_logger() -> Any:
    """A training-progress callback printing a line at every tenth of the steps."""
    t0 = time.perf_counter()
    shown = {"tenth": -1}

    def cb(step: int, total: int, loss: float) -> None:
        tenth = 10 * step // max(total, 1)
        if tenth > shown["tenth"]:
            shown["tenth"] = tenth
            console.print(f"  step {step}/{total}  loss {loss:.4f}  {time.perf_counter() - t0:.0f} s", highlight=False)

    return cb


def _print_heldout(judge: Any, heldout: list[Path]) -> None:
    from carealign.judge.labelled import read_labelled
    from carealign.judge_eval.accuracy import judge_accuracy

    for path in heldout:
        res = judge_accuracy(judge, read_labelled(path), source=str(path))
        table = Table(title=f"held-out accuracy on {path.name} ({res['rows']} rows)")
        for col in ("accuracy", "macro_f1", "recall Accept", "recall Caution", "recall Refuse", "ECE"):
            table.add_column(col, justify="right")
        rec = res["per_class_recall"]
        recalls = [f"{rec[k]:.3f}" if rec.get(k) is not None else "n/a" for k in ("Accept", "Caution", "Refuse")]
        ece = "n/a" if res["ece"] is None else f"{res['ece']:.3f}"
        table.add_row(f"{res['accuracy']:.3f}", f"{res['macro_f1']:.3f}", *recalls, ece)
        console.print(table)


@judge_app.command("train")
@user_errors
def judge_train_cmd(
    data: Annotated[
        list[Path], typer.Option("--data", "-d", help="Labelled JSONL (prompt, response, verdict); repeatable.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the trained judge.")],
    name: Annotated[str, typer.Option(help="The judge's name (in its identity string).")] = "classifier",
    kind: Annotated[str, typer.Option(help=KIND_HELP)] = "features",
    embeddings: Annotated[
        str,
        typer.Option(
            help="features: static (fast, MiniLM token embeddings) | contextual (MiniLM encoder, slow) | none."
        ),
    ] = "static",
    epochs: Annotated[
        float | None, typer.Option(min=0.1, help="Training epochs (default: 25 for features, 1 for encoder).")
    ] = None,
    hidden: Annotated[int, typer.Option(min=2, help="features: hidden units.")] = 32,
    max_length: Annotated[int, typer.Option(help="encoder: tokens per (prompt, response) pair.")] = 96,
    context_tokens: Annotated[
        int, typer.Option(help="encoder: the most tokens of the prompt (0: response only).")
    ] = 24,
    layers: Annotated[int, typer.Option(help="encoder: MiniLM layers kept (1-6; fewer is faster).")] = 1,
    tail_tokens: Annotated[int, typer.Option(help="encoder: the last tokens of a cut response that are kept.")] = 20,
    learning_rate: Annotated[float, typer.Option(help="encoder: peak learning rate.")] = 1e-4,
    quantize: Annotated[str, typer.Option(help="encoder at inference: dynamic-int8 | none.")] = "dynamic-int8",
    seed: int = 0,
    calibration: Annotated[
        list[Path] | None,
        typer.Option(
            "--calibration",
            help="Labelled JSONL to fit the confidence temperature on (responses like those the judge will see); "
            "default: a slice of --data held out by prompt. Repeatable.",
        ),
    ] = None,
    heldout: Annotated[
        list[Path] | None,
        typer.Option("--heldout", help="Labelled JSONL never trained on: report accuracy on it. Repeatable."),
    ] = None,
) -> None:
    """Train the verdict classifier on labelled responses; use it as --judge classifier:DIR."""
    from carealign.classify import FeatureConfig, TrainSettings
    from carealign.judge.classifier import train_classifier_judge
    from carealign.judge.labelled import read_labelled
    from carealign.progress import stage_progress

    if kind not in ("encoder", "features"):
        raise ConfigError(f"--kind {kind!r}; expected encoder or features")
    if embeddings not in ("static", "contextual", "none"):
        raise ConfigError(f"--embeddings {embeddings!r}; expected static, contextual or none")
    rows = read_labelled(data)
    cal_rows = read_labelled(calibration) if calibration else None
    sources = [f"{p.name} sha256:{sha256_file(p)[:16]}" for p in data]
    sources += [f"calibration {p.name} sha256:{sha256_file(p)[:16]}" for p in calibration or []]
    console.print(f"training a {kind} classifier on {len(rows)} labelled rows from {len(data)} file(s)")
    t0 = time.perf_counter()
    if kind == "features":
        n_epochs = int(epochs or 25)
        with stage_progress("train classifier", n_epochs, unit="epochs", console=console) as bar:
            judge = train_classifier_judge(
                rows, out, name=name, kind="features", sources=sources, calibration_rows=cal_rows,
                settings=TrainSettings(epochs=n_epochs, hidden=hidden, seed=seed),
                features=FeatureConfig(embeddings=embeddings),  # type: ignore[arg-type]
                progress=lambda e, n, loss: bar.advance(1),
            )  # fmt: skip
    else:
        enc = _encoder_settings(
            max_length, context_tokens, layers, epochs or 1.0, seed, quantize,
            tail_tokens=tail_tokens, learning_rate=learning_rate,
        )  # fmt: skip
        judge = train_classifier_judge(
            rows, out, name=name, kind="encoder", sources=sources, calibration_rows=cal_rows,
            encoder_settings=enc, progress=_step_logger(),
        )  # fmt: skip
    rep = judge.model.report
    assert rep is not None
    console.print(
        f"wrote [bold]{out}[/] ({judge.identity}): train accuracy {rep.train_accuracy:.3f}, "
        f"calibration accuracy {rep.calibration_accuracy}, temperature {rep.temperature:.2f} "
        f"(calibration NLL {rep.calibration_nll_before} -> {rep.calibration_nll_after}), "
        f"{time.perf_counter() - t0:.0f} s"
    )
    _print_heldout(judge, heldout or [])


@judge_app.command("distill")
@user_errors
def judge_distill_cmd(
    teacher: Annotated[
        str,
        typer.Option(
            "--teacher",
            "-t",
            help="The judge whose labels the student learns: llm:MODEL, llm:openai:MODEL@URL, panel:A,B,..., "
            "rules, classifier[:DIR] or a registered name.",
        ),
    ],
    input: Annotated[
        list[Path], typer.Option("--input", "-i", help="JSONL rows with prompt and response; repeatable.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the student judge and its report.")],
    human: Annotated[
        str | None,
        typer.Option(
            "--human", help="Column of human verdicts: where a row has one, it is used instead of the teacher."
        ),
    ] = None,
    heldout_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Share of prompts held out to measure agreement with the teacher.")
    ] = 0.2,
    kind: Annotated[str, typer.Option(help=KIND_HELP)] = "encoder",
    name: Annotated[str, typer.Option(help="The student's name (in its identity string).")] = "classifier",
    epochs: Annotated[
        float | None, typer.Option(min=0.1, help="Training epochs (default 1 encoder, 25 features).")
    ] = None,
    max_length: Annotated[int, typer.Option(help="encoder: tokens per (prompt, response) pair.")] = 96,
    context_tokens: Annotated[int, typer.Option(help="encoder: the most tokens of the prompt.")] = 24,
    layers: Annotated[int, typer.Option(help="encoder: MiniLM layers kept (1-6).")] = 1,
    quantize: Annotated[str, typer.Option(help="encoder at inference: dynamic-int8 | none.")] = "dynamic-int8",
    seed: int = 0,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model that wrote the responses (for a self/llm teacher).")
    ] = None,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (LLM teachers).")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (LLM teachers).")] = "auto",
) -> None:
    """Distil a judge into a fast classifier: the teacher labels the rows (humans where --human gives a
    verdict), a student trains on them, and its agreement with the teacher is measured on prompts it never saw.

    Writes the student into OUT (use it as --judge classifier:OUT), OUT/distill_labels.jsonl and OUT/distill.json.
    """
    from carealign.classify import TrainSettings
    from carealign.generate.registry import load_generator
    from carealign.io import read_jsonl
    from carealign.judge.registry import check_judge_spec, make_judge
    from carealign.judge_eval.distill import distill_judge

    if kind not in ("encoder", "features"):
        raise ConfigError(f"--kind {kind!r}; expected encoder or features")
    check_judge_spec(teacher)
    rows: list[dict[str, Any]] = []
    for path in input:
        part = read_jsonl(path)
        for i, r in enumerate(part, start=1):
            for key in ("prompt", "response"):
                if not isinstance(r.get(key), str):
                    raise DataError(f"missing or non-text field; every row needs '{key}'", path=path, row=i, field=key)
        rows += part
    if not rows:
        raise DataError("no rows", path=", ".join(map(str, input)))
    scorer = load_generator(model, dtype=dtype, device=device) if model else None
    the_teacher = make_judge(teacher, policy=scorer, dtype=dtype, device=device)
    enc = _encoder_settings(max_length, context_tokens, layers, epochs or 1.0, seed, quantize)
    console.print(
        f"teacher {the_teacher.identity} labels {len(rows)} rows" + (f" (human labels from '{human}')" if human else "")
    )
    labelled = {"n": 0}

    def label_cb(n: int) -> None:
        labelled["n"] += n
        console.print(f"  labelled {labelled['n']}/{len(rows)}", highlight=False)

    result = distill_judge(
        rows, the_teacher, out, human_field=human, heldout_fraction=heldout_fraction, kind=kind,
        encoder_settings=enc, settings=TrainSettings(epochs=int(epochs or 25), seed=seed), name=name, seed=seed,
        sources=[f"{p.name} sha256:{sha256_file(p)[:16]}" for p in input],
        label_progress=label_cb, train_progress=_step_logger(),
    )  # fmt: skip
    rep = result.report
    held = rep["heldout"]
    agreement = "n/a" if held["agreement"] is None else f"{held['agreement']:.3f}"
    kappa = "n/a" if held.get("kappa") is None else f"{held['kappa']:.3f}"
    console.print(
        f"labels {rep['label_counts']} from {rep['label_sources']}; "
        f"{rep['unscored_by_teacher']} unscored by the teacher"
    )
    console.print(
        f"wrote [bold]{out}[/] ({rep['student']}): trained on {rep['train_rows']} rows; agreement with the labels "
        f"on {held['rows']} held-out rows ({rep['heldout_prompts']} prompts): {agreement}, kappa {kappa}"
    )


@judge_app.command("ablate")
@user_errors
def judge_ablate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished (or stopped) `carealign align` run directory.")],
    validators: Annotated[
        str,
        typer.Option("--validators", "-V", help="Comma-separated validator judge specs, e.g. rules,classifier,self."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report JSON (default RUN_DIR/ablation.json).")
    ] = None,
) -> None:
    """Re-run each cycle's selection with each validator on the stored candidates: where does the promotion change?"""
    from carealign.io import write_json_atomic
    from carealign.judge_eval.ablate import ablate_validators

    sep = ";" if ";" in validators else ","
    specs = [v.strip() for v in validators.split(sep) if v.strip()]
    report = ablate_validators(run_dir, specs, console=console)
    target = out or run_dir / "ablation.json"
    write_json_atomic(target, report)
    table = Table(title=f"validator ablation of {run_dir}")
    table.add_column("cycle", justify="right")
    table.add_column("run's choice")
    for spec in specs:
        table.add_column(spec)
    for c in report["cycles"]:
        cells = []
        for spec in specs:
            e = c["by_validator"][spec]
            mark = "" if e["promoted"] == c["original"]["promoted"] else " [bold yellow](changed)[/]"
            scores = ", ".join(f"{n} {v:.2f}" for n, v in e["safety_score"].items() if v is not None)
            cells.append(f"{e['promoted']}{mark}\n[dim]{scores}[/]")
        table.add_row(str(c["cycle"]), f"{c['original']['promoted']} ({c['original']['validator']})", *cells)
    console.print(table)
    changed = sum(len(c["changes"]) for c in report["cycles"])
    console.print(f"wrote [bold]{target}[/]: {changed} validator/cycle combination(s) change the promoted policy")
