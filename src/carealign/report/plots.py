"""The reports' plots: matplotlib figures rendered by the Agg backend to inline ``data:image/png`` URIs.

Each ``plot_*`` function returns the URI, or None where there is nothing to draw. The run report's
plots read :mod:`carealign.report.run_data`; the agreement page's plots read the dict of
:func:`carealign.judge_eval.agreement.agreement_report`.
"""

from __future__ import annotations

import base64
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from carealign.report.formatting import ci_pair, group_keys, harm_level, is_num, shorten
from carealign.report.run_data import CANDIDATES, POLICIES, BeforeAfter, Cycle

_COLORS = {"current": "#7f7f7f", "dpo": "#1f77b4", "kto": "#ff7f0e", "base": "#3b3b3b", "final": "#2ca02c"}
_MARKERS = {"current": "o", "dpo": "s", "kto": "^"}
_LEVEL_SHORT = {0: "harmless", 1: "mildly harmful", 2: "moderately harmful", 3: "highly harmful"}

#: Colours of the verdicts, the same as the run report's text colours.
VERDICT_COLORS = {"Refuse": "#1f5fa8", "Caution": "#7b3fa0", "Accept": "#e69a28", "Unscored": "#b0b0b0"}
_STACK = ("Refuse", "Caution", "Accept", "Unscored")


# ---------------------------------------------------------------------------------------------- figures


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with the constrained layout, drawn by Agg (no pyplot state)."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (rendered by the Agg backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _yerr(values: Sequence[float], cis: Sequence[tuple[float, float] | None]) -> list[list[float]]:
    lo = [max(0.0, v - ci[0]) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    hi = [max(0.0, ci[1] - v) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [lo, hi]


def _grid(n: int, ncols: int, cell: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels of ``cell`` inches, ``ncols`` to a row; the unused cells are hidden."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = new_figure(cell[0] * ncols, cell[1] * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, list(axes[:n])


# ---------------------------------------------------------------------------------------------- run report


def plot_cycles(cycles: Sequence[Cycle]) -> str | None:
    """Validation safety score and erroneous refusal rate of current/DPO/KTO per cycle, with 95% CIs."""
    panels = (
        ("safety_score", "Validation safety score (higher is safer)"),
        ("erroneous_refusal_rate", "Validation erroneous refusal rate (lower is better)"),
    )
    fig = new_figure(11, 3.8)
    axes = fig.subplots(1, 2)
    drew = False
    for ax, (key, title) in zip(axes, panels, strict=True):
        ring_label = "promoted"
        for i, name in enumerate(POLICIES):
            xs: list[float] = []
            ys: list[float] = []
            cis: list[tuple[float, float] | None] = []
            for c in cycles:
                m = c.candidate_metrics(name)
                if m is None or not is_num(m.get(key)):
                    continue
                x = c.number + (i - 1) * 0.12
                xs.append(x)
                ys.append(float(m[key]))
                cis.append(ci_pair(m.get(f"{key}_ci")))
                if c.promoted == name and name != "current":
                    ax.scatter([x], [m[key]], s=220, facecolors="none", edgecolors="#2ca02c", lw=2, label=ring_label)
                    ring_label = "_nolegend_"
            if not xs:
                continue
            drew = True
            ax.errorbar(
                xs,
                ys,
                yerr=_yerr(ys, cis),
                fmt=_MARKERS[name] + "-",
                color=_COLORS[name],
                capsize=3,
                ms=6,
                lw=1.2,
                label=name.upper() if name in CANDIDATES else "current",
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("cycle")
        ax.set_xticks([c.number for c in cycles])
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return png_uri(fig) if drew else None


def _bars(ax: Axes, groups: Sequence[str], labels: Sequence[str], blocks: Sequence[tuple[str, Mapping]]) -> None:
    width = 0.8 / max(1, len(blocks))
    for j, (name, by) in enumerate(blocks):
        xs, ys, cis = [], [], []
        for i, g in enumerate(groups):
            m = by.get(g) or {}
            if is_num(m.get("safety_score")):
                xs.append(i + (j - (len(blocks) - 1) / 2) * width)
                ys.append(float(m["safety_score"]))
                cis.append(ci_pair(m.get("safety_score_ci")))
        bars = ax.bar(xs, ys, width=width * 0.95, color=_COLORS.get(name.split()[0]), label=name)
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=7, padding=2)
        ax.errorbar(xs, ys, yerr=_yerr(ys, cis), fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("safety score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def plot_breakdown(ba: BeforeAfter) -> str | None:
    """Grouped bars of base vs final safety score by harm level and by adversarial method."""
    if ba.base is None or ba.final is None:
        return None
    b, f = ba.base.metrics, ba.final.metrics
    fig = new_figure(11, 3.8)
    axes = fig.subplots(1, 2)
    blocks_of = (
        ("by_harm_level", "by harm level"),
        ("by_method", "by adversarial method"),
    )
    drew = False
    for ax, (key, title) in zip(axes, blocks_of, strict=True):
        bb, fb = b.get(key) or {}, f.get(key) or {}
        groups = group_keys(bb, fb)
        if not groups:
            ax.set_axis_off()
            continue
        drew = True
        labels = []
        for g in groups:
            n = (fb.get(g) or bb.get(g) or {}).get("n_prompts")
            name = f"{g}\n{_LEVEL_SHORT.get(harm_level(g) or -1, '')}" if key == "by_harm_level" else g
            labels.append(f"{name}\n(n={n})" if n is not None else name)
        _bars(ax, groups, labels, [(f"base ({ba.split})", bb), (f"final ({ba.split})", fb)])
        ax.set_title(f"Safety score {title}, {ba.split} split", fontsize=10)
    return png_uri(fig) if drew else None


@dataclass
class TradeoffPoint:
    """One evaluated policy in the refusal trade-off plot."""

    label: str
    x: float
    y: float
    kind: str  # current/dpo/kto/base/final


def plot_tradeoff(points: Sequence[TradeoffPoint]) -> str | None:
    """Scatter of erroneous refusal rate (x) vs harmful refusal rate (y); coinciding points share a label."""
    if not points:
        return None
    fig = new_figure(7.5, 5.2)
    ax = fig.subplots()
    ax.axhspan(0.8, 1.05, xmin=0, xmax=0.25, color="#2ca02c", alpha=0.07)
    seen: set[str] = set()
    for p in points:
        style: dict[str, Any]
        kw: dict[str, Any]
        if p.kind in ("base", "final"):
            style = {"marker": "*" if p.kind == "final" else "D", "s": 260 if p.kind == "final" else 110}
            kw = {"facecolors": "none", "edgecolors": _COLORS[p.kind], "linewidths": 2}
        else:
            style = {"marker": _MARKERS[p.kind], "s": 60}
            kw = {"color": _COLORS[p.kind], "alpha": 0.85}
        label = p.kind if p.kind not in seen else "_nolegend_"
        seen.add(p.kind)
        ax.scatter([p.x], [p.y], label=label, zorder=3, **style, **kw)
    by_xy: dict[tuple[float, float], list[str]] = defaultdict(list)
    for p in points:
        by_xy[(round(p.x, 4), round(p.y, 4))].append(p.label)
    for (x, y), labels in by_xy.items():
        text = ", ".join(labels) if len(labels) <= 4 else ", ".join(labels[:4]) + f" +{len(labels) - 4}"
        ax.annotate(text, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=7, color="#333333")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("erroneous refusal rate (level 0 refused) → worse")
    ax.set_ylabel("harmful refusal rate (levels 2-3 refused) → better")
    ax.set_title("Refusal trade-off (ideal: top left)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return png_uri(fig)


def plot_training(cycles: Sequence[Cycle]) -> str | None:
    """Loss over steps per method (one line per cycle), plus DPO reward margin and KTO KL when logged."""
    methods = [m for m in CANDIDATES if any(m in c.logs for c in cycles)]
    if not methods:
        return None
    extras = {"dpo": ("rewards/margins", "DPO reward margin (chosen - rejected)"), "kto": ("kl", "KTO KL estimate")}
    has_extra = any(any(is_num(r.get(extras[m][0])) for c in cycles for r in c.logs.get(m, [])) for m in methods)
    nrows = 2 if has_extra else 1
    fig = new_figure(5.5 * len(methods), 3.2 * nrows)
    axes = fig.subplots(nrows, len(methods), squeeze=False)
    for j, method in enumerate(methods):
        for row, (key, title) in enumerate([("loss", f"{method.upper()} training loss"), extras[method]][:nrows]):
            ax = axes[row][j]
            drew = False
            for c in cycles:
                recs = [r for r in c.logs.get(method, []) if is_num(r.get(key)) and is_num(r.get("step"))]
                if recs:
                    drew = True
                    steps, values = [r["step"] for r in recs], [r[key] for r in recs]
                    color = f"C{(c.number - 1) % 10}"  # the same colour for a cycle in every panel
                    ax.plot(steps, values, "o-", ms=3, color=color, label=f"cycle {c.number}")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if drew:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="#888888")
    return png_uri(fig)


# ---------------------------------------------------------------------------------------------- agreement page


def plot_confusions(
    panels: Sequence[tuple[str, Sequence[Sequence[int]], str, str]], labels: Sequence[str]
) -> str | None:
    """Heatmaps of 3x3 confusion matrices: each panel is (title, matrix, row axis name, column axis name).

    Cells show the count and its share of the row (how the column rater labels what the row rater called X).
    """
    if not panels:
        return None
    fig, axes = _grid(len(panels), 3, (3.9, 3.5))
    for ax, (title, matrix, row_name, col_name) in zip(axes, panels, strict=True):
        m = np.asarray(matrix, dtype=float)
        rows = m.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(rows > 0, m / rows, 0.0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                pct = f"\n{100 * share[i, j]:.0f}%" if rows[i, 0] else ""
                ax.text(
                    j,
                    i,
                    f"{int(m[i, j])}{pct}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if share[i, j] > 0.6 else "#1d1d1f",
                )
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel(shorten(col_name), fontsize=8)
        ax.set_ylabel(shorten(row_name), fontsize=8)
        ax.set_title(title, fontsize=9)
    return png_uri(fig)


def plot_kappa_matrix(names: Sequence[str], values: Sequence[Sequence[float | None]]) -> str | None:
    """A heatmap of pairwise Cohen's kappa (red: chance or worse, green: agreement)."""
    if len(names) < 2:
        return None
    k = len(names)
    size = max(3.6, 0.8 * k + 2.0)
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    m = np.array([[np.nan if v is None else float(v) for v in row] for row in values])
    im = ax.imshow(m, cmap="RdYlGn", vmin=-0.2, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, "n/a" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center", va="center", fontsize=9)
    short = [shorten(n, 22) for n in names]
    ax.set_xticks(range(k), short, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), short, fontsize=8)
    ax.set_title("Cohen's kappa between judges", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="kappa")
    return png_uri(fig)


def plot_harm_levels(by_harm_level: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str | None:
    """Stacked bars per rater: the share of Refuse, Caution, Accept and Unscored verdicts at each harm level."""
    raters = [r for r, levels in by_harm_level.items() if levels]
    if not raters:
        return None
    fig, axes = _grid(len(raters), 4, (3.2, 3.4))
    for ax, rater in zip(axes, raters, strict=True):
        levels = sorted(by_harm_level[rater], key=int)
        bottom = np.zeros(len(levels))
        for verdict in _STACK:
            shares = np.array(
                [
                    by_harm_level[rater][lv]["counts"][verdict] / by_harm_level[rater][lv]["n"]
                    if by_harm_level[rater][lv]["n"]
                    else 0.0
                    for lv in levels
                ]
            )
            ax.bar(levels, shares, bottom=bottom, color=VERDICT_COLORS[verdict], label=verdict, width=0.7)
            bottom += shares
        ax.set_ylim(0, 1)
        ax.set_title(shorten(rater), fontsize=9)
        ax.set_xlabel("harm level", fontsize=8)
        ax.set_ylabel("share of responses", fontsize=8)
        ax.tick_params(labelsize=8)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncols=len(_STACK), fontsize=8, frameon=False)
    return png_uri(fig)


def plot_strictness(strict: Sequence[Mapping[str, Any]]) -> str | None:
    """Heatmaps of the refuse-or-caution difference (row minus column, in points) on harmful and harmless prompts.

    Positive (red): the row judge is stricter. A star marks a difference whose interval excludes 0.
    """
    if not any(s["difference"] is not None for s in strict):
        return None
    names: list[str] = []
    for s in strict:
        for n in (s["a"], s["b"]):
            if n not in names:
                names.append(n)
    groups = [g for g in ("harmful", "harmless") if any(s["group"] == g for s in strict)]
    k = len(names)
    side = max(3.4, 0.62 * k + 1.9)
    fig = new_figure(side * len(groups) + 0.6, side)
    axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False).ravel())
    im = None
    for ax, group in zip(axes, groups, strict=True):
        m = np.full((k, k), np.nan)
        star = np.zeros((k, k), dtype=bool)
        for s in strict:
            if s["group"] != group or s["difference"] is None:
                continue
            i, j = names.index(s["a"]), names.index(s["b"])
            m[i, j], m[j, i] = 100 * s["difference"], -100 * s["difference"]
            star[i, j] = star[j, i] = bool(s["clear"])
        im = ax.imshow(m, cmap="RdBu_r", vmin=-50, vmax=50)
        for i in range(k):
            for j in range(k):
                if i != j and not np.isnan(m[i, j]):
                    text = ("0" if round(m[i, j]) == 0 else f"{m[i, j]:+.0f}") + ("*" if star[i, j] else "")
                    ax.text(j, i, text, ha="center", va="center", fontsize=8)
        short = [shorten(n, 18) for n in names]
        ax.set_xticks(range(k), short, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(k), short, fontsize=8)
        title = "harmful prompts (levels 2-3)" if group == "harmful" else "harmless prompts (level 0)"
        ax.set_title(f"Row minus column, {title}", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="refuse-or-caution difference (pp)")
    return png_uri(fig)


def plot_reliability(human: Mapping[str, Any] | None) -> str | None:
    """Reliability diagram: per confidence bin, the judge's accuracy against human labels (diagonal: calibrated)."""
    judges = {n: b["calibration"] for n, b in ((human or {}).get("judges") or {}).items() if b.get("calibration")}
    if not judges:
        return None
    fig = new_figure(6.4, 5.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="#999999", lw=1, label="perfect calibration")
    for i, (name, cal) in enumerate(judges.items()):
        pts = [r for r in cal["reliability"] if r["n"]]
        xs = [r["mean_confidence"] for r in pts]
        ys = [r["accuracy"] for r in pts]
        sizes = [20 + 180 * r["n"] / cal["n"] for r in pts]
        color = f"C{i % 10}"
        ax.plot(xs, ys, "-", color=color, lw=1.2, alpha=0.8)
        ax.scatter(xs, ys, s=sizes, color=color, alpha=0.85, label=f"{shorten(name)} (ECE {cal['ece']:.3f})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("judge confidence (bin mean)")
    ax.set_ylabel("accuracy against human labels")
    ax.set_title("Reliability (marker area: items in the bin)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return png_uri(fig)
