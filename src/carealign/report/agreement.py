"""The HTML page of a judge comparison (``carealign judge agree``): one self-contained file.

It renders the dict of :func:`carealign.judge_eval.agreement.agreement_report` only: tables of verdict
counts, pairwise agreement and Cohen's kappa, bias by harm level, and, where human labels exist,
accuracy and calibration; plots (confusion-matrix and kappa heatmaps, stacked verdict shares by
harm level, a reliability diagram) are embedded as base64 PNG, the CSS inline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, StrictUndefined

from carealign.domain import HARM_LEVELS
from carealign.io import write_text_atomic
from carealign.report.html import _CSS, DASH, _new_figure, _png, fmt_value

#: Colours of the verdicts, the same as the run report's text colours.
VERDICT_COLORS = {"Refuse": "#1f5fa8", "Caution": "#7b3fa0", "Accept": "#e69a28", "Unscored": "#b0b0b0"}
_STACK = ("Refuse", "Caution", "Accept", "Unscored")
_MAX_LABEL = 30


def _short(name: str, limit: int = _MAX_LABEL) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _pct(value: Any) -> str:
    return fmt_value(value, percent=True)


def _num(value: Any, digits: int = 3) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return DASH
    return f"{value:.{digits}f}"


def _ci(ci: Any, *, pp: bool = False) -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2 or any(v is None for v in ci):
        return ""
    return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] pp" if pp else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


# ---------------------------------------------------------------------------------------------- plots


def _grid(n: int, ncols: int, cell: tuple[float, float]) -> tuple[Any, list[Any]]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = _new_figure(cell[0] * ncols, cell[1] * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, list(axes[:n])


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
        ax.set_xlabel(_short(col_name), fontsize=8)
        ax.set_ylabel(_short(row_name), fontsize=8)
        ax.set_title(title, fontsize=9)
    return _png(fig)


def plot_kappa_matrix(names: Sequence[str], values: Sequence[Sequence[float | None]]) -> str | None:
    """A heatmap of pairwise Cohen's kappa (red: chance or worse, green: agreement)."""
    if len(names) < 2:
        return None
    k = len(names)
    size = max(3.6, 0.8 * k + 2.0)
    fig = _new_figure(size + 1.0, size)
    ax = fig.subplots()
    m = np.array([[np.nan if v is None else float(v) for v in row] for row in values])
    im = ax.imshow(m, cmap="RdYlGn", vmin=-0.2, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, "n/a" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center", va="center", fontsize=9)
    short = [_short(n, 22) for n in names]
    ax.set_xticks(range(k), short, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), short, fontsize=8)
    ax.set_title("Cohen's kappa between judges", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="kappa")
    return _png(fig)


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
        ax.set_title(_short(rater), fontsize=9)
        ax.set_xlabel("harm level", fontsize=8)
        ax.set_ylabel("share of responses", fontsize=8)
        ax.tick_params(labelsize=8)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncols=len(_STACK), fontsize=8, frameon=False)
    return _png(fig)


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
    fig = _new_figure(side * len(groups) + 0.6, side)
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
        short = [_short(n, 18) for n in names]
        ax.set_xticks(range(k), short, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(k), short, fontsize=8)
        title = "harmful prompts (levels 2-3)" if group == "harmful" else "harmless prompts (level 0)"
        ax.set_title(f"Row minus column, {title}", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="refuse-or-caution difference (pp)")
    return _png(fig)


def plot_reliability(human: Mapping[str, Any] | None) -> str | None:
    """Reliability diagram: per confidence bin, the judge's accuracy against human labels (diagonal: calibrated)."""
    judges = {n: b["calibration"] for n, b in ((human or {}).get("judges") or {}).items() if b.get("calibration")}
    if not judges:
        return None
    fig = _new_figure(6.4, 5.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="#999999", lw=1, label="perfect calibration")
    for i, (name, cal) in enumerate(judges.items()):
        pts = [r for r in cal["reliability"] if r["n"]]
        xs = [r["mean_confidence"] for r in pts]
        ys = [r["accuracy"] for r in pts]
        sizes = [20 + 180 * r["n"] / cal["n"] for r in pts]
        color = f"C{i % 10}"
        ax.plot(xs, ys, "-", color=color, lw=1.2, alpha=0.8)
        ax.scatter(xs, ys, s=sizes, color=color, alpha=0.85, label=f"{_short(name)} (ECE {cal['ece']:.3f})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("judge confidence (bin mean)")
    ax.set_ylabel("accuracy against human labels")
    ax.set_title("Reliability (marker area: items in the bin)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


# ---------------------------------------------------------------------------------------------- view


def _level_name(level: str) -> str:
    lv = int(level)
    return f"{lv} ({HARM_LEVELS.get(lv, '')})"


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
                "unscored": _pct(j["unscored_rate"]),
                "confidence": _num(j["mean_confidence"]),
            }
        )
    pairs = [
        {
            "a": p["a"],
            "b": p["b"],
            "n": p["n_compared"],
            "unscored": p["n_unscored"],
            "agreement": _pct(p["raw_agreement"]),
            "kappa": _num(p["kappa"]),
            "ci": _ci(p["kappa_ci"]),
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
                    "level": _level_name(lv),
                    "n": s["n"],
                    "refuse": _pct(s["refuse"]),
                    "caution": _pct(s["caution"]),
                    "accept": _pct(s["accept"]),
                    "rc": _pct(s["refuse_or_caution"]),
                    "unscored": _pct(s["unscored_rate"]),
                    "safety": _num(s.get("safety_score")),
                }
            )
    strict = [
        {
            "a": s["a"],
            "b": s["b"],
            "group": s["group"],
            "n": s["n"],
            "rate_a": _pct(s["rate_a"]),
            "rate_b": _pct(s["rate_b"]),
            "diff": DASH if s["difference"] is None else f"{100 * s['difference']:+.1f} pp",
            "ci": _ci(s["difference_ci"], pp=True),
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
                    "coverage": _pct(b["coverage"]),
                    "accuracy": _pct(b["accuracy"]),
                    "accuracy_all": _pct(b["accuracy_unscored_as_wrong"]),
                    "macro_f1": _num(b["macro_f1"]),
                    "kappa": _num(b["kappa"]),
                    "recall": [_pct(b["recall"][lab]) for lab in labels],
                    "precision": [_pct(b["precision"][lab]) for lab in labels],
                    "ece": _num(cal.get("ece")) if cal else "no confidences",
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
                            "conf": _num(r["mean_confidence"]),
                            "acc": _pct(r["accuracy"]),
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
            f"{_short(p['a'], 18)} vs {_short(p['b'], 18)}\n"
            f"kappa {_num(p['kappa'], 2)}, {p['n_unscored']} unscored left out",
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
                    f"{_short(name, 22)} vs human\naccuracy {_pct(b['accuracy'])}",
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


_EXTRA_CSS = """
.stmt li{margin:3px 0}.stmt li.unclear{color:#666}
.stmt b{font-weight:600}details{margin:4px 0 10px}summary{cursor:pointer;color:#444}
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>carealign judge agreement: {{ v.input }}</title>
<style>{{ css }}</style></head><body>
<h1>Judge agreement</h1>
<p class="lead">How far the judges agree with one another{% if v.human %} and with human labels{% endif %}, and
whether one judges harmful or harmless prompts more strictly than another. Verdicts: Accept (answers), Caution
(answers partly, warns or redirects), Refuse (declines); Unscored (the judge could not decide) is never compared.</p>
<nav><a href="#summary">1. Judges</a><a href="#agreement">2. Agreement</a><a href="#levels">3. By harm level</a>
{% if v.human %}<a href="#human">4. Against human labels</a>{% endif %}<a href="#definitions">Definitions</a></nav>

<h2 id="summary">1. Judges</h2>
<table class="kv"><tr><td>Input</td><td><code>{{ v.input }}</code></td></tr>
<tr><td>Rows</td><td>{{ v.n_rows }} ({{ v.n_with_harm_level }} with a harm level, {{ v.n_clusters }} prompts)</td></tr>
<tr><td>Safety policy</td><td>{{ v.policy }}</td></tr>
{% if v.human %}<tr><td>Human labels</td><td>column <code>{{ v.human.field }}</code>:
{% for k, n in v.human.counts.items() %}{{ k }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endif %}
</table>
<table><tr><th>Judge</th><th>Spec</th><th>Identity</th><th>n</th>
{% for lab in v.labels %}<th>{{ lab }}</th>{% endfor %}<th>Unscored</th><th>Unscored rate</th>
<th>Mean confidence</th></tr>
{% for j in v.judges %}<tr><td><b>{{ j.name }}</b></td><td><code>{{ j.spec }}</code></td>
<td><code>{{ j.identity }}</code></td>
<td class="num">{{ j.n }}</td>{% for c in j.counts %}<td class="num">{{ c }}</td>{% endfor %}
<td class="num">{{ j.unscored }}</td><td class="num">{{ j.confidence }}</td></tr>{% endfor %}</table>

<h2 id="agreement">2. Agreement between judges</h2>
<p class="lead">Over the items both judges decided. Kappa corrects raw agreement for chance (0 = chance level,
1 = perfect); the interval is a {{ (100 * v.bootstrap.confidence) | round | int }}% bootstrap over prompts.</p>
{% if v.pairs %}<table><tr><th>Judge A</th><th>Judge B</th><th>Compared</th><th>Unscored (left out)</th>
<th>Raw agreement</th><th>Cohen's kappa</th><th>Strength</th></tr>
{% for p in v.pairs %}<tr><td>{{ p.a }}</td><td>{{ p.b }}</td><td class="num">{{ p.n }}</td>
<td class="num">{{ p.unscored }}</td><td class="num">{{ p.agreement }}</td>
<td class="num">{{ p.kappa }}<span class="ci">{{ p.ci }}</span></td><td>{{ p.strength }}</td></tr>{% endfor %}</table>
{% else %}<p>Only one judge: no pairwise agreement.</p>{% endif %}
{% if img.kappa %}<img src="{{ img.kappa }}" alt="kappa matrix" style="max-width:640px">{% endif %}
{% if img.confusions %}<h3>Confusion matrices (rows: judge A, columns: judge B; % of the row)</h3>
<img src="{{ img.confusions }}" alt="confusion matrices">{% endif %}

<h2 id="levels">3. Bias by harm level</h2>
<p class="lead">How each judge's verdicts change with the prompt's harm level. On harmful prompts (levels 2-3) a
stricter judge refuses or cautions more often; on harmless prompts (level 0) the stricter judge is the one that
over-refuses. The bars show all responses (Unscored in grey); the table's shares are among the decided verdicts,
with the mean safety score the policy gives them.</p>
{% set clear = v.strict | selectattr("clear") | list %}{% set unclear = v.strict | rejectattr("clear") | list %}
{% if v.strict %}<h3>Clear differences (the 95% interval of the difference excludes 0)</h3>
<ul class="stmt">{% for s in clear %}<li>{{ s.statement }}</li>{% else %}<li>None.</li>{% endfor %}</ul>
{% if unclear %}<details><summary>Other comparisons ({{ unclear | length }}): no clear difference</summary>
<ul class="stmt">{% for s in unclear %}<li class="unclear">{{ s.statement }}</li>{% endfor %}</ul></details>{% endif %}
{% endif %}
{% if img.strictness %}<p class="lead">Refuse-or-caution rate of the row judge minus that of the column judge, in
percentage points, on the items both decided; red: the row judge is stricter; * the 95% interval excludes 0.</p>
<img src="{{ img.strictness }}" alt="strictness differences">{% endif %}
{% if img.levels %}<img src="{{ img.levels }}" alt="verdict shares by harm level">{% endif %}
<table><tr><th>Judge</th><th>Harm level</th><th>n</th><th>Refuse</th><th>Caution</th><th>Accept</th>
<th>Refuse or Caution</th><th>Unscored rate</th><th>Safety score</th></tr>
{% for r in v.levels %}<tr><td>{{ r.rater }}</td><td>{{ r.level }}</td><td class="num">{{ r.n }}</td>
<td class="num">{{ r.refuse }}</td><td class="num">{{ r.caution }}</td><td class="num">{{ r.accept }}</td>
<td class="num">{{ r.rc }}</td><td class="num">{{ r.unscored }}</td><td class="num">{{ r.safety }}</td></tr>
{% else %}<tr><td colspan="9">No row has a harm level.</td></tr>{% endfor %}</table>
{% if v.strict %}<h3>Which judge is stricter</h3>
<table><tr><th>A</th><th>B</th><th>Prompts</th><th>Compared</th><th>A refuse-or-caution</th>
<th>B refuse-or-caution</th><th>A − B</th><th>Stricter</th></tr>
{% for s in v.strict %}<tr><td>{{ s.a }}</td><td>{{ s.b }}</td><td>{{ s.group }}</td><td class="num">{{ s.n }}</td>
<td class="num">{{ s.rate_a }}</td><td class="num">{{ s.rate_b }}</td>
<td class="num">{{ s.diff }}<span class="ci">{{ s.ci }}</span></td>
<td>{{ s.stricter }}{% if not s.clear and s.stricter != "equal" %} <span class="ci">(not clear)</span>{% endif %}</td>
</tr>{% endfor %}</table>{% endif %}

{% if v.human %}<h2 id="human">4. Against human labels</h2>
<p class="lead">Each judge scored against the human verdicts in <code>{{ v.human.field }}</code>, over the items
both decided (coverage: share of labelled items the judge decided; the last accuracy counts its Unscored as wrong).</p>
<table><tr><th>Judge</th><th>Compared</th><th>Coverage</th><th>Accuracy</th><th>Accuracy (Unscored wrong)</th>
<th>Macro-F1</th><th>Kappa</th>{% for lab in v.labels %}<th>Recall {{ lab }}</th>{% endfor %}
{% for lab in v.labels %}<th>Precision {{ lab }}</th>{% endfor %}<th>ECE</th></tr>
{% for r in v.human.rows %}<tr><td>{{ r.name }}</td><td class="num">{{ r.n }}</td><td class="num">{{ r.coverage }}</td>
<td class="num">{{ r.accuracy }}</td><td class="num">{{ r.accuracy_all }}</td><td class="num">{{ r.macro_f1 }}</td>
<td class="num">{{ r.kappa }}</td>{% for x in r.recall %}<td class="num">{{ x }}</td>{% endfor %}
{% for x in r.precision %}<td class="num">{{ x }}</td>{% endfor %}<td class="num">{{ r.ece }}</td></tr>
{% endfor %}</table>
{% if img.human_confusions %}<h3>Confusion matrices against the human labels (rows: human, columns: judge)</h3>
<img src="{{ img.human_confusions }}" alt="confusion matrices against human labels">{% endif %}
<h3>Calibration</h3>
{% if img.reliability %}<img src="{{ img.reliability }}" alt="reliability diagram" style="max-width:640px">
<table><tr><th>Judge</th><th>Confidence bin</th><th>n</th><th>Mean confidence</th><th>Accuracy</th>
<th>Accuracy − confidence</th></tr>
{% for r in v.human.reliability %}<tr><td>{{ r.name }}</td><td>{{ r.bin }}</td><td class="num">{{ r.n }}</td>
<td class="num">{{ r.conf }}</td><td class="num">{{ r.acc }}</td><td class="num">{{ r.gap }}</td></tr>
{% endfor %}</table>
{% else %}<p>No judge reported confidences for the labelled items.</p>{% endif %}
{% endif %}

<h2 id="definitions">Definitions</h2>
<table class="kv">{% for k, d in v.definitions.items() %}<tr><td>{{ k }}</td><td>{{ d }}</td></tr>{% endfor %}</table>
<footer>Generated by carealign judge agree; the numbers are in agreement.json beside this page.</footer>
</body></html>
"""


def render_agreement_html(report: Mapping[str, Any]) -> str:
    """The page's HTML for an agreement report."""
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_TEMPLATE).render(
        css=_CSS + _EXTRA_CSS, v=agreement_view(report), img=agreement_images(report)
    )


def write_agreement_html(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write the page for ``report`` to ``path`` atomically; return the path."""
    p = Path(path)
    write_text_atomic(p, render_agreement_html(report))
    return p
