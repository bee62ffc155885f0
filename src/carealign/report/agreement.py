"""The HTML page of a judge comparison (``carealign judge agree``): one self-contained file.

It renders the dict of :func:`carealign.judge_eval.agreement.agreement_report` only, with the
``agreement.html`` template: tables of verdict counts, pairwise agreement and Cohen's kappa, bias by
harm level, and, where human labels exist, accuracy and calibration; the plots (confusion-matrix and
kappa heatmaps, stacked verdict shares by harm level, a reliability diagram, from
:mod:`carealign.report.plots`) are embedded as base64 PNG, the CSS inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carealign.io import write_text_atomic
from carealign.report.formatting import DASH, fmt_fixed, fmt_interval, fmt_percent, level_name, shorten
from carealign.report.plots import (
    plot_confusions,
    plot_harm_levels,
    plot_kappa_matrix,
    plot_reliability,
    plot_strictness,
)
from carealign.report.templating import render


def agreement_toc(has_human: bool) -> list[tuple[str, str]]:
    """The page's sections: (anchor id, text in the navigation bar); section 4 only with human labels."""
    toc = [("summary", "1. Judges"), ("agreement", "2. Agreement"), ("levels", "3. By harm level")]
    if has_human:
        toc.append(("human", "4. Against human labels"))
    return [*toc, ("definitions", "Definitions")]


def agreement_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the template shows, formatted."""
    labels = list(report["labels"])
    judges = []
    for name, j in report["judges"].items():
        counts = j["verdict_counts"]
        judges.append(
            {
                "name": name,
                "spec": j.get("spec", name),
                "identity": j.get("identity", ""),
                "n": j["n"],
                "counts": [counts.get(v, 0) for v in (*labels, "Unscored")],
                "unscored": fmt_percent(j["unscored_rate"]),
                "confidence": fmt_fixed(j["mean_confidence"]),
            }
        )
    pairs = [
        {
            "a": p["a"],
            "b": p["b"],
            "n": p["n_compared"],
            "unscored": p["n_unscored"],
            "agreement": fmt_percent(p["raw_agreement"]),
            "kappa": fmt_fixed(p["kappa"]),
            "ci": fmt_interval(p["kappa_ci"]),
            "strength": p["kappa_strength"],
        }
        for p in report["pairwise"]
    ]
    levels = []
    for rater, by in report["by_harm_level"].items():
        for lv, s in sorted(by.items(), key=lambda kv: int(kv[0])):
            levels.append(
                {
                    "rater": rater,
                    "level": level_name(lv),
                    "n": s["n"],
                    "refuse": fmt_percent(s["refuse"]),
                    "caution": fmt_percent(s["caution"]),
                    "accept": fmt_percent(s["accept"]),
                    "rc": fmt_percent(s["refuse_or_caution"]),
                    "unscored": fmt_percent(s["unscored_rate"]),
                    "safety": fmt_fixed(s.get("safety_score")),
                }
            )
    strict = [
        {
            "a": s["a"],
            "b": s["b"],
            "group": s["group"],
            "n": s["n"],
            "rate_a": fmt_percent(s["rate_a"]),
            "rate_b": fmt_percent(s["rate_b"]),
            "diff": DASH if s["difference"] is None else f"{100 * s['difference']:+.1f} pp",
            "ci": fmt_interval(s["difference_ci"], pp=True),
            "statement": s["statement"],
            "clear": s["clear"],
            "stricter": s["stricter"] or "equal",
        }
        for s in report["strictness"]
    ]
    human = None
    if report.get("human"):
        h = report["human"]
        rows = []
        for name, b in h["judges"].items():
            cal = b.get("calibration") or {}
            rows.append(
                {
                    "name": name,
                    "n": b["n_compared"],
                    "coverage": fmt_percent(b["coverage"]),
                    "accuracy": fmt_percent(b["accuracy"]),
                    "accuracy_all": fmt_percent(b["accuracy_unscored_as_wrong"]),
                    "macro_f1": fmt_fixed(b["macro_f1"]),
                    "kappa": fmt_fixed(b["kappa"]),
                    "recall": [fmt_percent(b["recall"][lab]) for lab in labels],
                    "precision": [fmt_percent(b["precision"][lab]) for lab in labels],
                    "ece": fmt_fixed(cal.get("ece")) if cal else "no confidences",
                }
            )
        reliability = []
        for name, b in h["judges"].items():
            cal = b.get("calibration")
            if not cal:
                continue
            for r in cal["reliability"]:
                if r["n"]:
                    reliability.append(
                        {
                            "name": name,
                            "bin": f"{r['lower']:.1f}–{r['upper']:.1f}",
                            "n": r["n"],
                            "conf": fmt_fixed(r["mean_confidence"]),
                            "acc": fmt_percent(r["accuracy"]),
                            "gap": f"{100 * (r['accuracy'] - r['mean_confidence']):+.1f} pp",
                        }
                    )
        human = {"field": h["field"], "counts": h["verdict_counts"], "rows": rows, "reliability": reliability}
    return {
        "input": report.get("input", ""),
        "n_rows": report["n_rows"],
        "n_with_harm_level": report["n_with_harm_level"],
        "n_clusters": report["n_clusters"],
        "policy": report["policy"],
        "labels": labels,
        "judges": judges,
        "pairs": pairs,
        "levels": levels,
        "strict": strict,
        "human": human,
        "bootstrap": report["bootstrap"],
        "definitions": report.get("definitions") or {},
    }


def agreement_images(report: Mapping[str, Any]) -> dict[str, str | None]:
    """The page's plots as data URIs (``None`` where there is nothing to draw)."""
    labels = list(report["labels"])
    pair_panels = [
        (
            f"{shorten(p['a'], 18)} vs {shorten(p['b'], 18)}\n"
            f"kappa {fmt_fixed(p['kappa'], 2)}, {p['n_unscored']} unscored left out",
            p["confusion_matrix"],
            p["a"],
            p["b"],
        )
        for p in report["pairwise"]
    ]
    human_panels = []
    if report.get("human"):
        for name, b in report["human"]["judges"].items():
            human_panels.append(
                (
                    f"{shorten(name, 22)} vs human\naccuracy {fmt_percent(b['accuracy'])}",
                    b["confusion_matrix"],
                    f"human ({report['human']['field']})",
                    name,
                )
            )
    km = report["kappa_matrix"]
    return {
        "confusions": plot_confusions(pair_panels, labels),
        "kappa": plot_kappa_matrix(km["judges"], km["values"]),
        "levels": plot_harm_levels(report["by_harm_level"]),
        "strictness": plot_strictness(report["strictness"]),
        "human_confusions": plot_confusions(human_panels, labels),
        "reliability": plot_reliability(report.get("human")),
    }


def render_agreement_html(report: Mapping[str, Any]) -> str:
    """The page's HTML for an agreement report."""
    view = agreement_view(report)
    return render("agreement.html", v=view, toc=agreement_toc(view["human"] is not None), img=agreement_images(report))


def write_agreement_html(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write the page for ``report`` to ``path`` atomically; return the path."""
    p = Path(path)
    write_text_atomic(p, render_agreement_html(report))
    return p
