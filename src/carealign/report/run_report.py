"""The HTML report of an alignment run (``carealign report RUN_DIR``): one self-contained file.

:func:`build_report` reads the run directory (:func:`carealign.report.run_data.load_run`), turns
it into view models (:mod:`carealign.report.run_views`) and plots (:mod:`carealign.report.plots`),
and renders ``templates/run_report.html`` (CSS inline, plots as base64 PNG).

Sections: run header, before/after table, metrics per cycle, breakdown by harm level and method,
refusal trade-off, DPO vs KTO selection, preference data, training, example responses. Without a
``test/`` evaluation the before/after sections compare validation outputs, and say so.
"""

from __future__ import annotations

from pathlib import Path

from carealign.io import write_text_atomic
from carealign.report.formatting import DASH, MAX_TEXT_CHARS
from carealign.report.plots import plot_breakdown, plot_cycles, plot_tradeoff, plot_training
from carealign.report.run_data import RunData, before_after, load_run
from carealign.report.run_views import (
    HEADLINE,
    TOC,
    before_after_view,
    cycles_view,
    examples_view,
    header_view,
    preferences_view,
    selection_view,
    tradeoff_points,
    training_view,
)
from carealign.report.templating import render
from carealign.rundir import RunLayout


def render_report(run: RunData) -> str:
    """The report's HTML for an already loaded run."""
    ba = before_after(run)
    images = {
        "cycles": plot_cycles(run.cycles),
        "breakdown": plot_breakdown(ba),
        "tradeoff": plot_tradeoff(tradeoff_points(run, ba)),
        "training": plot_training(run.cycles),
    }
    return render(
        "run_report.html",
        toc=[(anchor, f"{i}. {title}") for i, (anchor, title) in enumerate(TOC, start=1)],
        h=header_view(run, ba),
        ba=ba,
        bav=before_after_view(ba),
        cyc=cycles_view(run),
        headline=HEADLINE,
        img=images,
        sel=selection_view(run),
        prefs=preferences_view(run),
        train=training_view(run),
        ex=examples_view(ba),
        max_chars=MAX_TEXT_CHARS,
        dash=DASH,
        version=(run.manifest.get("versions") or {}).get("carealign") or "",
    )


def build_report(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write a self-contained HTML report of the alignment run in ``run_dir``; return its path.

    Reads only files in ``run_dir``; writes ``out`` (default ``RUN_DIR/report.html``) atomically.
    Raises :class:`CarealignError` when ``run_dir`` is not an alignment run directory.
    """
    run = load_run(run_dir)
    path = Path(out) if out is not None else RunLayout(run.path).report
    write_text_atomic(path, render_report(run))
    return path
