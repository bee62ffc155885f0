"""The HTML report of an alignment run: one self-contained file (inline CSS, plots as base64 PNG).

:func:`build_report` reads only files inside the run directory (layout in :mod:`carealign.align.run`),
plus ``test/base`` and ``test/final`` when the run was followed by a before/after evaluation on the
held-out test split (as ``carealign demo`` does). Without ``test/``, the before/after sections
compare the validation outputs of the base policy (``cycle_1/validation/current``) with those of the
last promoted policy, and say so: the validation prompts chose that policy, so the gain is optimistic.

Sections: run header, before/after table, metrics per cycle, breakdown by harm level and method,
refusal trade-off, DPO vs KTO selection, preference data, training, example responses.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from carealign.domain import HARM_LEVELS, PRINCIPLES
from carealign.errors import CarealignError, DataError
from carealign.io import read_jsonl, write_text_atomic

#: The candidate methods of a cycle, and every policy validated in a cycle.
CANDIDATES: tuple[str, ...] = ("dpo", "kto")
POLICIES: tuple[str, ...] = ("current", *CANDIDATES)

#: Texts longer than this are cut in the examples section.
MAX_TEXT_CHARS = 600
#: How many changed examples the report shows at most.
MAX_EXAMPLES = 12

DASH = "–"
_COLORS = {"current": "#7f7f7f", "dpo": "#1f77b4", "kto": "#ff7f0e", "base": "#3b3b3b", "final": "#2ca02c"}
_MARKERS = {"current": "o", "dpo": "s", "kto": "^"}
_LEVEL_SHORT = {0: "harmless", 1: "mildly harmful", 2: "moderately harmful", 3: "highly harmful"}


@dataclass(frozen=True)
class MetricSpec:
    """A headline metric: its key in metrics.json, how to show it, and which direction is better."""

    key: str
    label: str
    percent: bool
    better: int  # +1: higher is better, -1: lower is better
    help: str


HEADLINE: tuple[MetricSpec, ...] = (
    MetricSpec("safety_score", "Safety score", False, +1, "mean CARES score (1 = the ideal response)"),
    MetricSpec("harmful_refusal_rate", "Harmful refusal rate", True, +1, "share of level 2-3 prompts refused"),
    MetricSpec("erroneous_refusal_rate", "Erroneous refusal rate", True, -1, "share of harmless prompts refused"),
    MetricSpec("over_caution_rate", "Over-caution rate", True, -1, "share of harmless prompts answered with Caution"),
    MetricSpec("unscored_rate", "Unscored rate", True, -1, "share of responses the judge could not decide"),
)


# ---------------------------------------------------------------------------------------------- loading


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


def _load_eval(path: Path, label: str) -> Evaluation | None:
    metrics = _read_dict(path / "metrics.json")
    if metrics is None:
        return None
    return Evaluation(label, path, metrics, _read_rows(path / "responses.jsonl"))


def _load_manifest(run: Path) -> dict[str, Any]:
    path = run / "manifest.json"
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
    numbers = {int(p.name[6:]) for p in run.glob("cycle_*") if p.is_dir() and p.name[6:].isdigit()}
    for key in manifest.get("cycles") or {}:
        if str(key).isdigit() and (run / f"cycle_{key}").is_dir():
            numbers.add(int(key))
    return sorted(numbers)


def _load_cycle(run: Path, number: int, manifest: Mapping[str, Any]) -> Cycle:
    cdir = run / f"cycle_{number}"
    record = (manifest.get("cycles") or {}).get(str(number)) or {}
    cycle = Cycle(
        number=number,
        path=cdir,
        record=dict(record),
        selection=_read_dict(cdir / "selection.json"),
        preferences=_read_dict(cdir / "preferences.json"),
        samples_metrics=_read_dict(cdir / "samples" / "metrics.json"),
    )
    for method in CANDIDATES:
        info = _read_dict(cdir / method / "train.json")
        if info is not None:
            cycle.train[method] = info
        log = [r for r in _read_rows(cdir / method / "log.jsonl") if _is_num(r.get("loss"))]
        if log:
            cycle.logs[method] = log
    for name in POLICIES:
        ev = _load_eval(cdir / "validation" / name, f"cycle {number} {name}")
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
        test_base=_load_eval(run / "test" / "base", "base (test)"),
        test_final=_load_eval(run / "test" / "final", "final (test)"),
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


# ---------------------------------------------------------------------------------------------- formatting


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ci_pair(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(_is_num(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def fmt_value(value: Any, *, percent: bool = False) -> str:
    """A metric value: a share as a percentage, a score with 3 decimals, a dash when missing."""
    if not _is_num(value):
        return DASH
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def fmt_ci(ci: Any, *, percent: bool = False) -> str:
    """A 95% interval as ``[low, high]`` (empty when missing)."""
    pair = _ci_pair(ci)
    if pair is None:
        return ""
    lo, hi = pair
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]" if percent else f"[{lo:.3f}, {hi:.3f}]"


def fmt_signed(value: Any, *, percent: bool = False) -> str:
    """A change: percentage points for shares, 3 signed decimals for scores."""
    if not _is_num(value):
        return DASH
    return f"{100 * value:+.1f} pp" if percent else f"{value:+.3f}"


def _num(value: Any, digits: int = 4) -> str:
    if not _is_num(value):
        return DASH
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def _change_class(delta: Any, better: int) -> str:
    if not _is_num(delta) or abs(delta) < 1e-12:
        return ""
    return "good" if delta * better > 0 else "bad"


def truncate(text: Any, limit: int = MAX_TEXT_CHARS) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters (with an ellipsis), and whether it was cut."""
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return s, False
    return s[:limit].rstrip() + " …", True


def _level(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _level_label(key: Any) -> str:
    lv = _level(key)
    return f"level {key}" if lv is None or lv not in HARM_LEVELS else f"level {lv} ({HARM_LEVELS[lv]})"


def _group_keys(*blocks: Mapping[str, Any] | None) -> list[str]:
    keys: set[str] = set()
    for b in blocks:
        keys |= set(b or {})

    def order(k: str) -> tuple[int, int | str]:
        return (0, int(k)) if k.isdigit() else (1, k)

    return sorted(keys, key=order)


# ---------------------------------------------------------------------------------------------- plots


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (rendered by the Agg backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _yerr(values: Sequence[float], cis: Sequence[tuple[float, float] | None]) -> list[list[float]]:
    lo = [max(0.0, v - ci[0]) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    hi = [max(0.0, ci[1] - v) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [lo, hi]


def plot_cycles(cycles: Sequence[Cycle]) -> str | None:
    """Validation safety score and erroneous refusal rate of current/DPO/KTO per cycle, with 95% CIs."""
    panels = (
        ("safety_score", "Validation safety score (higher is safer)"),
        ("erroneous_refusal_rate", "Validation erroneous refusal rate (lower is better)"),
    )
    fig = _new_figure(11, 3.8)
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
                if m is None or not _is_num(m.get(key)):
                    continue
                x = c.number + (i - 1) * 0.12
                xs.append(x)
                ys.append(float(m[key]))
                cis.append(_ci_pair(m.get(f"{key}_ci")))
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
    return _png(fig) if drew else None


def _bars(ax: Axes, groups: Sequence[str], labels: Sequence[str], blocks: Sequence[tuple[str, Mapping]]) -> None:
    width = 0.8 / max(1, len(blocks))
    for j, (name, by) in enumerate(blocks):
        xs, ys, cis = [], [], []
        for i, g in enumerate(groups):
            m = by.get(g) or {}
            if _is_num(m.get("safety_score")):
                xs.append(i + (j - (len(blocks) - 1) / 2) * width)
                ys.append(float(m["safety_score"]))
                cis.append(_ci_pair(m.get("safety_score_ci")))
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
    fig = _new_figure(11, 3.8)
    axes = fig.subplots(1, 2)
    blocks_of = (
        ("by_harm_level", "by harm level"),
        ("by_method", "by adversarial method"),
    )
    drew = False
    for ax, (key, title) in zip(axes, blocks_of, strict=True):
        bb, fb = b.get(key) or {}, f.get(key) or {}
        groups = _group_keys(bb, fb)
        if not groups:
            ax.set_axis_off()
            continue
        drew = True
        labels = []
        for g in groups:
            n = (fb.get(g) or bb.get(g) or {}).get("n_prompts")
            name = f"{g}\n{_LEVEL_SHORT.get(_level(g) or -1, '')}" if key == "by_harm_level" else g
            labels.append(f"{name}\n(n={n})" if n is not None else name)
        _bars(ax, groups, labels, [(f"base ({ba.split})", bb), (f"final ({ba.split})", fb)])
        ax.set_title(f"Safety score {title}, {ba.split} split", fontsize=10)
    return _png(fig) if drew else None


@dataclass
class TradeoffPoint:
    """One evaluated policy in the refusal trade-off plot."""

    label: str
    x: float
    y: float
    kind: str  # current/dpo/kto/base/final


def tradeoff_points(run: RunData, ba: BeforeAfter) -> list[TradeoffPoint]:
    """(erroneous refusal, harmful refusal) of every evaluated policy that has both."""
    pts: list[TradeoffPoint] = []
    for c in run.cycles:
        for name in POLICIES:
            m = c.candidate_metrics(name)
            if m and _is_num(m.get("erroneous_refusal_rate")) and _is_num(m.get("harmful_refusal_rate")):
                x, y = float(m["erroneous_refusal_rate"]), float(m["harmful_refusal_rate"])
                pts.append(TradeoffPoint(f"c{c.number} {name}", x, y, name))
    for kind, ev in (("base", ba.base), ("final", ba.final)):
        m = ev.metrics if ev else None
        if m and _is_num(m.get("erroneous_refusal_rate")) and _is_num(m.get("harmful_refusal_rate")):
            x, y = float(m["erroneous_refusal_rate"]), float(m["harmful_refusal_rate"])
            pts.append(TradeoffPoint(f"{kind} ({ba.split})", x, y, kind))
    return pts


def plot_tradeoff(points: Sequence[TradeoffPoint]) -> str | None:
    """Scatter of erroneous refusal rate (x) vs harmful refusal rate (y); coinciding points share a label."""
    if not points:
        return None
    fig = _new_figure(7.5, 5.2)
    ax = fig.subplots()
    ax.axhspan(0.8, 1.05, xmin=0, xmax=0.25, color="#2ca02c", alpha=0.07)
    seen: set[str] = set()
    for p in points:
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
    return _png(fig)


def plot_training(cycles: Sequence[Cycle]) -> str | None:
    """Loss over steps per method (one line per cycle), plus DPO reward margin and KTO KL when logged."""
    methods = [m for m in CANDIDATES if any(m in c.logs for c in cycles)]
    if not methods:
        return None
    extras = {"dpo": ("rewards/margins", "DPO reward margin (chosen - rejected)"), "kto": ("kl", "KTO KL estimate")}
    has_extra = any(any(_is_num(r.get(extras[m][0])) for c in cycles for r in c.logs.get(m, [])) for m in methods)
    nrows = 2 if has_extra else 1
    fig = _new_figure(5.5 * len(methods), 3.2 * nrows)
    axes = fig.subplots(nrows, len(methods), squeeze=False)
    for j, method in enumerate(methods):
        for row, (key, title) in enumerate([("loss", f"{method.upper()} training loss"), extras[method]][:nrows]):
            ax = axes[row][j]
            drew = False
            for c in cycles:
                recs = [r for r in c.logs.get(method, []) if _is_num(r.get(key)) and _is_num(r.get("step"))]
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
    return _png(fig)


# ---------------------------------------------------------------------------------------------- view models


def _judge_ids(metrics: Iterable[Mapping[str, Any] | None]) -> list[str]:
    ids: list[str] = []
    for m in metrics:
        j = (m or {}).get("judge")
        if j and str(j) not in ids:
            ids.append(str(j))
    return ids


def header_view(run: RunData, ba: BeforeAfter) -> dict[str, Any]:
    """Run identity, judges, cycles, promotions, why it stopped, versions and key settings."""
    m, cfg = run.manifest, run.config
    stages = m.get("stages") or {}
    train_ids = _judge_ids(c.samples_metrics for c in run.cycles)
    if not train_ids:
        train_ids = _judge_ids(s for k, s in stages.items() if str(k).endswith("/samples"))
    val_ids = _judge_ids(ev.metrics for c in run.cycles for ev in c.validation.values())
    if not val_ids:
        val_ids = [str(c.selection["validator"]) for c in run.cycles if c.selection and c.selection.get("validator")]
    done = [c for c in run.cycles if c.promoted is not None]
    n_cfg = cfg.get("cycles")
    if m.get("stopped"):
        stopped = f"Stopped early: {m['stopped']}"
    elif not m.get("finished"):
        stopped = "Not finished: manifest.json has no finish time; the report shows the stages done so far."
    elif n_cfg is not None and len(done) >= int(n_cfg):
        stopped = f"Completed all {n_cfg} configured cycle(s)."
    else:
        stopped = "Finished."
    base_model = m.get("base_policy") or cfg.get("policy_model") or DASH
    spec = cfg.get("policy_model")
    if spec and spec != base_model:
        base_model = f"{spec} ({base_model})"
    versions = m.get("versions") or {}
    inputs = m.get("inputs") or {}

    def prompts(key: str) -> str:
        p = cfg.get(key) or {}
        n = (inputs.get(key) or {}).get("n")
        parts = [str(p.get("source", "?")), str(p.get("split", "?"))]
        return " / ".join(parts) + (f", {n} prompts" if n is not None else "")

    gen = cfg.get("generation") or {}
    sel = cfg.get("selection") or {}
    settings = [
        ("Train prompts", prompts("train_prompts")),
        ("Validation prompts", prompts("validation_prompts")),
        ("Samples per train prompt", _num(gen.get("samples"))),
        (
            "Selection rule",
            f"paired {fmt_value(sel.get('confidence'), percent=True)} interval of the safety gain must clear "
            f"{fmt_signed(sel.get('min_improvement'))}; erroneous refusals may rise by at most "
            f"{fmt_value(sel.get('max_erroneous_refusal_increase'), percent=True)}",
        ),
    ]
    for method in CANDIDATES:
        s = cfg.get(method) or {}
        if s:
            settings.append(
                (
                    f"{method.upper()} training",
                    f"beta {_num(s.get('beta'))}, lr {_num(s.get('learning_rate'))}, LoRA r={_num(s.get('lora_r'))}, "
                    f"max steps {_num(s.get('max_steps'))}, reference {s.get('reference', DASH)}",
                )
            )
    return {
        "run_dir": str(run.path.resolve()),
        "base_model": str(base_model),
        "final_policy": str(m.get("current_policy") or "the base policy (nothing was promoted)"),
        "train_judge": ", ".join(train_ids) or DASH,
        "train_judge_spec": str(cfg.get("judge") or DASH),
        "validator": ", ".join(val_ids) or DASH,
        "validator_spec": str(cfg.get("validator") or DASH),
        "eval_judge": ", ".join(_judge_ids([ev.metrics for ev in (ba.base, ba.final) if ev is not None])) or DASH,
        "cycles_done": len(done),
        "cycles_configured": DASH if n_cfg is None else str(n_cfg),
        "promotions": [{"cycle": c.number, "promoted": c.promoted or "unfinished"} for c in run.cycles],
        "stopped": stopped,
        "created": str(m.get("created") or DASH),
        "finished": str(m.get("finished") or DASH),
        "versions": [(k, str(v)) for k, v in versions.items() if k != "platform" and v is not None],
        "platform": str(versions.get("platform") or ""),
        "settings": settings,
    }


def _metric_cells(m: Mapping[str, Any] | None, spec: MetricSpec) -> dict[str, str]:
    m = m or {}
    return {
        "value": fmt_value(m.get(spec.key), percent=spec.percent),
        "ci": fmt_ci(m.get(f"{spec.key}_ci"), percent=spec.percent),
    }


def before_after_view(ba: BeforeAfter) -> dict[str, Any] | None:
    """Rows of the before/after table: each headline metric, overall and per harm level."""
    if ba.base is None or ba.final is None:
        return None
    b, f = ba.base.metrics, ba.final.metrics
    groups: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [("All prompts", b, f)]
    bl, fl = b.get("by_harm_level") or {}, f.get("by_harm_level") or {}
    groups += [(_level_label(k).capitalize(), bl.get(k) or {}, fl.get(k) or {}) for k in _group_keys(bl, fl)]
    out = []
    for title, bm, fm in groups:
        rows = []
        for spec in HEADLINE:
            bv, fv = bm.get(spec.key), fm.get(spec.key)
            if not _is_num(bv) and not _is_num(fv):
                continue
            delta = fv - bv if _is_num(bv) and _is_num(fv) else None
            support = [((x.get("support") or {}).get(spec.key)) for x in (bm, fm)]
            rows.append(
                {
                    "label": spec.label,
                    "help": spec.help,
                    "base": _metric_cells(bm, spec),
                    "final": _metric_cells(fm, spec),
                    "change": fmt_signed(delta, percent=spec.percent),
                    "cls": _change_class(delta, spec.better),
                    "n": " / ".join(DASH if s is None else str(s) for s in support),
                }
            )
        if rows:
            out.append({"title": title, "rows": rows})
    return {
        "groups": out,
        "base_model": str(b.get("model") or DASH),
        "final_model": str(f.get("model") or DASH),
        "judge": ", ".join(_judge_ids([b, f])) or DASH,
        "n_base": b.get("n_prompts", b.get("n")),
        "n_final": f.get("n_prompts", f.get("n")),
    }


def cycles_view(run: RunData) -> list[dict[str, Any]]:
    """One row per cycle and validated (or skipped) policy."""
    rows = []
    for c in run.cycles:
        for name in POLICIES:
            m = c.candidate_metrics(name)
            skipped = c.skipped(name) if name in CANDIDATES else None
            if m is None and skipped is None and name not in c.train:
                continue
            if name == "current":
                status = "starting policy" + (" (copy of last cycle's promoted outputs)" if c.number > 1 else "")
            elif skipped:
                status = f"not trained: {skipped}"
            elif m is None:
                status = "not validated"
            else:
                status = "candidate"
            rows.append(
                {
                    "cycle": c.number,
                    "policy": name if name == "current" else name.upper(),
                    "model": str((m or {}).get("model") or ""),
                    "status": status,
                    "promoted": c.promoted == name,
                    "n": _num((m or {}).get("n_prompts", (m or {}).get("n"))),
                    "cells": [_metric_cells(m, spec) for spec in HEADLINE],
                }
            )
    return rows


def _paired(d: Mapping[str, Any] | None, *, percent: bool) -> dict[str, str]:
    d = d or {}
    ci = [d.get("low"), d.get("high")]
    return {
        "mean": fmt_signed(d.get("mean"), percent=percent),
        "ci": "" if _ci_pair(ci) is None else "[" + ", ".join(fmt_signed(v, percent=percent) for v in ci) + "]",
        "n": _num(d.get("n")),
        "p": fmt_value(d.get("p_not_better"), percent=True),
    }


def selection_view(run: RunData) -> dict[str, Any]:
    """Per cycle: each candidate's paired comparison with the current policy, why not, and the decision."""
    cycles = []
    wins: dict[str, int] = defaultdict(int)
    for c in run.cycles:
        if c.promoted:
            wins[c.promoted] += 1
        cands = (c.selection or {}).get("candidates") or {}
        rows = []
        for method in CANDIDATES:
            info = cands.get(method)
            skipped = c.skipped(method)
            if info is None:
                why = [f"not trained: {skipped}"] if skipped else ["no comparison (not validated)"]
                rows.append(
                    {
                        "method": method.upper(),
                        "promoted": False,
                        "qualifies": None,
                        "why_not": why,
                        "gain": _paired(None, percent=False),
                        "err": _paired(None, percent=True),
                    }
                )
                continue
            rows.append(
                {
                    "method": method.upper(),
                    "promoted": c.promoted == method,
                    "qualifies": bool(info.get("qualifies")),
                    "why_not": [str(w) for w in info.get("why_not") or []],
                    "gain": _paired(info.get("safety_gain"), percent=False),
                    "err": _paired(info.get("erroneous_refusal_change"), percent=True),
                }
            )
        cycles.append(
            {
                "cycle": c.number,
                "promoted": c.promoted or "unfinished",
                "reason": c.reason or DASH,
                "rows": rows,
            }
        )
    summary = ", ".join(f"{k.upper() if k in CANDIDATES else k} {v}×" for k, v in sorted(wins.items())) or DASH
    return {"cycles": cycles, "summary": summary}


def preferences_view(run: RunData) -> list[dict[str, Any]]:
    """The preference-data statistics of each cycle (preferences.json)."""
    rows = []
    for c in run.cycles:
        p = c.preferences
        if p is None:
            continue
        total, with_pairs = p.get("prompts"), p.get("prompts_with_pairs")
        share = with_pairs / total if _is_num(with_pairs) and _is_num(total) and total else None
        levels = []
        for k, v in sorted((p.get("by_harm_level") or {}).items(), key=lambda kv: str(kv[0])):
            levels.append(f"L{k}: {_num((v or {}).get('with_pairs'))}/{_num((v or {}).get('prompts'))}")
        rows.append(
            {
                "cycle": c.number,
                "threshold": _num(p.get("threshold")),
                "pairs": f"{_num(with_pairs)} / {_num(total)}" + ("" if share is None else f" ({share:.0%})"),
                "all_bad": _num(p.get("all_bad")),
                "rescued": _num(p.get("all_bad_rescued_by_reminder")),
                "all_good": _num(p.get("all_good")),
                "ties": _num(p.get("ties_without_pairs")),
                "unscored": _num(p.get("unscored")),
                "dpo_pairs": _num(p.get("dpo_pairs")),
                "kto": f"{_num(p.get('kto_desirable'))} / {_num(p.get('kto_undesirable'))}",
                "levels": " · ".join(levels),
            }
        )
    return rows


def training_view(run: RunData) -> list[dict[str, Any]]:
    """Steps, time, final loss and reward margin of each trained (or skipped) candidate."""
    rows = []
    for c in run.cycles:
        for method in CANDIDATES:
            info = c.train.get(method)
            if info is None:
                continue
            log = info.get("final_log") or {}
            skipped = c.skipped(method)
            rows.append(
                {
                    "cycle": c.number,
                    "method": method.upper(),
                    "status": skipped or "trained",
                    "skipped": bool(skipped),
                    "examples": _num(info.get("examples")),
                    "steps": _num(info.get("steps")),
                    "seconds": _num(info.get("seconds")),
                    "loss": _num(log.get("loss")),
                    "train_loss": _num(log.get("train_loss")),
                    "margin": _num(log.get("rewards/margins")),
                    "kl": _num(log.get("kl")),
                    "reference": str(info.get("reference") or DASH),
                }
            )
    return rows


def _first_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The first sample of each prompt, keyed by prompt id, in file order."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r.get("sample") if _is_num(r.get("sample")) else 0):
        if r.get("prompt_id") is not None:
            out.setdefault(str(r["prompt_id"]), r)
    return out


def _score(row: Mapping[str, Any]) -> float | None:
    return float(row["score"]) if _is_num(row.get("score")) else None


def _describe(level: int | None, before: str, after: str, delta: float | None) -> tuple[str, int, str]:
    """(what happened, priority (0 = most telling), css class) of a verdict change."""
    if level is not None and level >= 2 and before == "Accept" and after == "Refuse":
        return "now refuses a harmful request", 0, "good"
    if level == 0 and after == "Refuse":
        return "regression: now refuses a harmless question", 0, "bad"
    if level == 0 and before == "Refuse":
        return "now answers a harmless question it refused", 1, "good"
    if level is not None and level >= 1 and after == "Accept":
        return "regression: now accepts a harmful request", 1, "bad"
    if delta is not None and delta > 0:
        return "safer verdict", 1, "good"
    if delta is not None and delta < 0:
        return "less safe verdict", 1, "bad"
    return "verdict changed (same score)", 2, ""


def examples_view(ba: BeforeAfter, limit: int = MAX_EXAMPLES) -> dict[str, Any]:
    """Prompts whose verdict changed between base and final, spread over harm levels, plus a transition table."""
    if ba.base is None or ba.final is None:
        return {"examples": [], "matched": 0, "changed": 0, "transitions": None}
    base, final = _first_rows(ba.base.rows), _first_rows(ba.final.rows)
    common = [pid for pid in base if pid in final]
    verdicts = ["Accept", "Caution", "Refuse", "Unscored"]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    by_level: dict[int | None, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    for pid in common:
        b, f = base[pid], final[pid]
        bv, fv = str(b.get("verdict") or "Unscored"), str(f.get("verdict") or "Unscored")
        counts[(bv, fv)] += 1
        if bv == fv:
            continue
        level = _level(b.get("harm_level", f.get("harm_level")))
        bs, fs = _score(b), _score(f)
        delta = fs - bs if bs is not None and fs is not None else None
        what, prio, cls = _describe(level, bv, fv, delta)
        btext, bcut = truncate(b.get("response"))
        ftext, fcut = truncate(f.get("response"))
        ptext, pcut = truncate(b.get("prompt", f.get("prompt")))
        principle = b.get("principle")
        item = {
            "prompt_id": pid,
            "level": DASH if level is None else str(level),
            "level_label": _level_label(level) if level is not None else "unknown harm level",
            "principle": PRINCIPLES.get(str(principle), str(principle or DASH)),
            "method": str(b.get("method") or DASH),
            "prompt": ptext,
            "prompt_cut": pcut,
            "base_response": btext,
            "base_cut": bcut,
            "base_verdict": bv,
            "base_score": fmt_value(bs),
            "final_response": ftext,
            "final_cut": fcut,
            "final_verdict": fv,
            "final_score": fmt_value(fs),
            "what": what,
            "cls": cls,
        }
        by_level[level].append((prio, pid, item))
    order = [lv for lv in (3, 2, 0, 1) if lv in by_level] + sorted(
        (lv for lv in by_level if lv not in (0, 1, 2, 3)), key=lambda v: (v is None, v or 0)
    )
    for lv in order:
        by_level[lv].sort(key=lambda t: (t[0], t[1]))
    picked: list[tuple[int, int, dict[str, Any]]] = []
    queues = {lv: list(by_level[lv]) for lv in order}
    while len(picked) < limit and any(queues.values()):
        for rank, lv in enumerate(order):
            if queues[lv] and len(picked) < limit:
                prio, _, item = queues[lv].pop(0)
                picked.append((rank, prio, item))
    picked.sort(key=lambda t: (t[0], t[1]))
    present = [v for v in verdicts if any(counts.get((v, x)) or counts.get((x, v)) for x in verdicts)]
    transitions = {
        "verdicts": present,
        "rows": [(bv, [counts.get((bv, fv), 0) for fv in present]) for bv in present],
    }
    return {
        "examples": [t[2] for t in picked],
        "matched": len(common),
        "changed": sum(len(v) for v in by_level.values()),
        "transitions": transitions if present else None,
    }


# ---------------------------------------------------------------------------------------------- template

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:0 24px 48px;color:#1d1d1f;line-height:1.45;font-size:14px}
h1{font-size:24px;margin:24px 0 4px}
h2{font-size:19px;margin:34px 0 6px;border-bottom:2px solid #e3e3e8;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}p.lead{color:#555;margin:2px 0 10px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:8px 0}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border:1px solid #dcdce2;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f3f3f7;font-weight:600}td.num{text-align:right;white-space:nowrap}
tr.group th{background:#e8eef8;text-align:left}tr.promoted td{background:#eef8ee}
.ci{color:#777;font-size:11px;margin-left:4px}.good{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:11px;font-weight:600;background:#e3e3e8}
.badge.win{background:#2ca02c;color:#fff}.badge.stay{background:#f0b400;color:#fff}.badge.skip{background:#bbb;color:#fff}
.kv td:first-child{font-weight:600;white-space:nowrap;background:#fafafc}
img{max-width:100%;border:1px solid #eee;margin:6px 0}nav{font-size:13px;margin:8px 0 0}nav a{margin-right:10px}
.ex{border:1px solid #dcdce2;border-radius:6px;margin:12px 0;padding:8px 12px}.ex .meta{font-size:12px;color:#555}
.ex .cols{display:grid;grid-template-columns:1fr 1fr;gap:12px;margin-top:6px}
.text{white-space:pre-wrap;word-break:break-word;background:#f7f7f9;border-radius:4px;padding:6px 8px;font-size:12.5px;
font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.v-Accept{color:#b26a00}.v-Refuse{color:#1f5fa8}.v-Caution{color:#7b3fa0}.v-Unscored{color:#777}
ul.why{margin:0;padding-left:16px}footer{margin-top:40px;color:#888;font-size:12px}
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>carealign report: {{ h.run_dir }}</title>
<style>{{ css }}</style></head><body>
<h1>carealign alignment report</h1>
<p class="lead">Iterative safety alignment of a healthcare assistant: each cycle samples responses, judges them
(Accept / Caution / Refuse), scores them against the prompt's harm level (0 harmless to 3 highly harmful),
trains DPO and KTO LoRA candidates on the resulting preferences, validates them and promotes the best one.</p>
<nav>{% for id, title in toc %}<a href="#{{ id }}">{{ loop.index }}. {{ title }}</a>{% endfor %}</nav>

<h2 id="run">1. Run</h2>
<p class="lead">What was aligned, with which judges, and how the run ended.</p>
<table class="kv">
<tr><td>Run directory</td><td><code>{{ h.run_dir }}</code></td></tr>
<tr><td>Base model (π₀)</td><td><code>{{ h.base_model }}</code></td></tr>
<tr><td>Final policy</td><td><code>{{ h.final_policy }}</code></td></tr>
<tr><td>Training judge</td><td>{{ h.train_judge }} <span class="ci">(spec {{ h.train_judge_spec }})</span>
 &mdash; labels the sampled responses that become preference data</td></tr>
<tr><td>Validator</td><td>{{ h.validator }} <span class="ci">(spec {{ h.validator_spec }})</span>
 &mdash; judges the validation responses the selection rule compares</td></tr>
<tr><td>Evaluation judge (before/after)</td><td>{{ h.eval_judge }}</td></tr>
<tr><td>Cycles</td><td>{{ h.cycles_done }} completed of {{ h.cycles_configured }} configured</td></tr>
<tr><td>Promotions</td><td>{% for p in h.promotions %}cycle {{ p.cycle }}:
 <span class="badge {{ 'win' if p.promoted in ('dpo', 'kto') else ('stay' if p.promoted == 'current' else '') }}">
 {{ p.promoted }}</span>{% if not loop.last %} &nbsp; {% endif %}{% else %}none{% endfor %}</td></tr>
<tr><td>Outcome</td><td>{{ h.stopped }}</td></tr>
<tr><td>Created / finished</td><td>{{ h.created }} / {{ h.finished }}</td></tr>
{% for k, v in h.settings %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}
<tr><td>Library versions</td><td>
{% for k, v in h.versions %}{{ k }} {{ v }}{% if not loop.last %} · {% endif %}{% endfor %}
{% if h.platform %}<br><span class="ci">{{ h.platform }}</span>{% endif %}</td></tr>
</table>

<h2 id="before-after">2. Before and after ({{ ba.split }} split)</h2>
<p class="lead">The base model against the final policy on the same prompts; 95% bootstrap intervals (over prompts)
in brackets, changes in green when safer or more helpful and red when worse.</p>
<p class="note">{{ ba.note }}</p>
{% if bav %}
<p>Evaluation judge: <b>{{ bav.judge }}</b>. Base: <code>{{ bav.base_model }}</code> ({{ bav.n_base }} prompts);
final: <code>{{ bav.final_model }}</code> ({{ bav.n_final }} prompts). The n column counts the responses each rate is
computed on (base / final).</p>
<table><tr><th>Metric</th><th>Base</th><th>Final</th><th>Change</th><th>n</th></tr>
{% for g in bav.groups %}<tr class="group"><th colspan="5">{{ g.title }}</th></tr>
{% for r in g.rows %}<tr><td title="{{ r.help }}">{{ r.label }}</td>
<td class="num">{{ r.base.value }}<span class="ci">{{ r.base.ci }}</span></td>
<td class="num">{{ r.final.value }}<span class="ci">{{ r.final.ci }}</span></td>
<td class="num {{ r.cls }}">{{ r.change }}</td><td class="num">{{ r.n }}</td></tr>
{% endfor %}{% endfor %}</table>
<p class="ci">Safety score: mean CARES score (1 = the ideal response for the harm level). Harmful refusal: share of
level 2-3 prompts refused. Erroneous refusal: share of harmless (level 0) prompts refused. Over-caution: share of
harmless prompts answered with Caution. Unscored: share the judge could not decide (left out of the other rates).</p>
{% else %}<p>No base/final evaluation was found in the run directory.</p>{% endif %}

<h2 id="cycles">3. Metrics per cycle (validation split)</h2>
<p class="lead">Each cycle's starting policy ("current") and its DPO and KTO candidates on the validation prompts,
judged by the validator; a green ring marks the promoted candidate.</p>
{% if img.cycles %}<img src="{{ img.cycles }}" alt="validation metrics per cycle">{% endif %}
{% if cyc %}<table><tr><th>Cycle</th><th>Policy</th><th>Status</th><th>Prompts</th>
{% for s in headline %}<th title="{{ s.help }}">{{ s.label }}</th>{% endfor %}</tr>
{% for r in cyc %}<tr class="{{ 'promoted' if r.promoted else '' }}"><td>{{ r.cycle }}</td>
<td>{{ r.policy }}{% if r.promoted %} <span class="badge {{ 'stay' if r.policy == 'current' else 'win' }}">
{{ 'kept' if r.policy == 'current' else 'promoted' }}</span>{% endif %}</td>
<td>{{ r.status }}</td><td class="num">{{ r.n }}</td>
{% for c in r.cells %}<td class="num">{{ c.value }}<span class="ci">{{ c.ci }}</span></td>{% endfor %}</tr>
{% endfor %}</table>{% else %}<p>No cycle has validation results yet.</p>{% endif %}

<h2 id="breakdown">4. Safety score by harm level and by method ({{ ba.split }} split)</h2>
<p class="lead">Where the change happened: base vs final per harm level (0 harmless to 3 highly harmful) and per
adversarial rewrite of the prompt (direct, indirect, obfuscated, role play), with 95% intervals.</p>
{% if img.breakdown %}<img src="{{ img.breakdown }}" alt="safety score by harm level and method">
{% else %}<p>No breakdown available.</p>{% endif %}

<h2 id="tradeoff">5. Refusal trade-off</h2>
<p class="lead">A safe assistant refuses harmful requests (up) without refusing harmless ones (left); every
evaluated policy is one point (c1 dpo = cycle 1's DPO candidate on validation;
base/final on the {{ ba.split }} split as hollow markers).</p>
{% if img.tradeoff %}<img src="{{ img.tradeoff }}" alt="refusal trade-off" style="max-width:760px">
{% else %}<p>No policy has both rates (the prompts lack harmless or level 2-3 items).</p>{% endif %}

<h2 id="selection">6. DPO vs KTO: what was promoted and why</h2>
<p class="lead">Each candidate is compared with the current policy on the same validation prompts (paired bootstrap);
it qualifies when its safety gain clears the margin and its erroneous refusals do not rise too much.
Promotions: {{ sel.summary }}.</p>
{% for c in sel.cycles %}<h3>Cycle {{ c.cycle }}: promoted
<span class="badge {{ 'win' if c.promoted in ('dpo', 'kto') else 'stay' }}">{{ c.promoted }}</span></h3>
<table><tr><th>Candidate</th><th>Safety gain vs current</th><th>P(not better)</th>
<th>Erroneous refusal change</th><th>Qualifies</th><th>Why not</th></tr>
{% for r in c.rows %}<tr class="{{ 'promoted' if r.promoted else '' }}"><td>{{ r.method }}
{% if r.promoted %} <span class="badge win">promoted</span>{% endif %}</td>
<td class="num">{{ r.gain.mean }}<span class="ci">{{ r.gain.ci }}</span></td><td class="num">{{ r.gain.p }}</td>
<td class="num">{{ r.err.mean }}<span class="ci">{{ r.err.ci }}</span></td>
<td>{% if r.qualifies is none %}<span class="badge skip">n/a</span>{% elif r.qualifies %}yes{% else %}no{% endif %}</td>
<td>{% if r.why_not %}<ul class="why">{% for w in r.why_not %}<li>{{ w }}</li>{% endfor %}</ul>
{% else %}{{ dash }}{% endif %}</td></tr>{% endfor %}</table>
<p><b>Reason:</b> {{ c.reason }}</p>
{% else %}<p>No cycle has been selected yet.</p>{% endfor %}

<h2 id="preferences">7. Preference data</h2>
<p class="lead">How many training prompts yielded a usable preference signal: a DPO pair needs a better and a worse
response to the same prompt; all-bad prompts may be rescued by a safety-reminder response; KTO labels single
responses desirable or undesirable.</p>
{% if prefs %}<table><tr><th>Cycle</th><th>Prompts with pairs / total</th><th>All-bad</th><th>Rescued by reminder</th>
<th>All-good</th><th>Ties</th><th>Unscored</th><th>DPO pairs</th><th>KTO desirable / undesirable</th>
<th>Prompts with pairs by harm level</th><th>Desirable threshold</th></tr>
{% for p in prefs %}<tr><td>{{ p.cycle }}</td><td class="num">{{ p.pairs }}</td><td class="num">{{ p.all_bad }}</td>
<td class="num">{{ p.rescued }}</td><td class="num">{{ p.all_good }}</td><td class="num">{{ p.ties }}</td>
<td class="num">{{ p.unscored }}</td><td class="num">{{ p.dpo_pairs }}</td><td class="num">{{ p.kto }}</td>
<td>{{ p.levels }}</td><td class="num">{{ p.threshold }}</td></tr>{% endfor %}</table>
{% else %}<p>No preferences.json found.</p>{% endif %}

<h2 id="training">8. Training</h2>
<p class="lead">The LoRA training of each candidate: a DPO loss below ln 2 ≈ 0.693 and a positive reward margin mean
the model learned to prefer the chosen responses; a skipped candidate had too little usable data.</p>
{% if train %}<table><tr><th>Cycle</th><th>Method</th><th>Status</th><th>Examples</th><th>Steps</th><th>Seconds</th>
<th>Final loss</th><th>Mean train loss</th><th>Reward margin</th><th>KL</th><th>Reference</th></tr>
{% for t in train %}<tr><td>{{ t.cycle }}</td><td>{{ t.method }}</td>
<td>{% if t.skipped %}<span class="badge skip">skipped</span> {% endif %}{{ t.status }}</td>
<td class="num">{{ t.examples }}</td><td class="num">{{ t.steps }}</td><td class="num">{{ t.seconds }}</td>
<td class="num">{{ t.loss }}</td><td class="num">{{ t.train_loss }}</td><td class="num">{{ t.margin }}</td>
<td class="num">{{ t.kl }}</td><td>{{ t.reference }}</td></tr>{% endfor %}</table>
{% else %}<p>No train.json found.</p>{% endif %}
{% if img.training %}<img src="{{ img.training }}" alt="training curves">{% endif %}

<h2 id="examples">9. Example responses before and after ({{ ba.split }} split)</h2>
<p class="lead">Prompts whose verdict changed between the base and the final policy ({{ ex.changed }} of
{{ ex.matched }} matched prompts), spread over harm levels; harmful prompts the final policy now refuses and harmless
prompts it now refuses (regressions) come first. Texts are cut at {{ max_chars }} characters.</p>
{% if ex.transitions %}<table><tr><th>Base verdict ↓ / final verdict →</th>
{% for v in ex.transitions.verdicts %}<th>{{ v }}</th>{% endfor %}</tr>
{% for bv, counts in ex.transitions.rows %}<tr><th>{{ bv }}</th>
{% for n in counts %}<td class="num">{{ n }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% for e in ex.examples %}<div class="ex">
<div class="meta"><b>{{ e.level_label }}</b> · {{ e.principle }} · method {{ e.method }}
 · <code>{{ e.prompt_id }}</code> · <span class="{{ e.cls }}">{{ e.what }}</span></div>
<div class="text">{{ e.prompt }}</div>
<div class="cols"><div><b>Base</b>: <span class="v-{{ e.base_verdict }}">{{ e.base_verdict }}</span>
 <span class="ci">score {{ e.base_score }}</span><div class="text">{{ e.base_response }}</div></div>
<div><b>Final</b>: <span class="v-{{ e.final_verdict }}">{{ e.final_verdict }}</span>
 <span class="ci">score {{ e.final_score }}</span><div class="text">{{ e.final_response }}</div></div></div>
</div>{% else %}<p>No prompt's verdict changed between base and final.</p>{% endfor %}

<footer>Generated by carealign {{ version }} from the files of {{ h.run_dir }}.</footer>
</body></html>
"""

_TOC = (
    ("run", "Run"),
    ("before-after", "Before/after"),
    ("cycles", "Per cycle"),
    ("breakdown", "By level and method"),
    ("tradeoff", "Refusal trade-off"),
    ("selection", "DPO vs KTO"),
    ("preferences", "Preference data"),
    ("training", "Training"),
    ("examples", "Examples"),
)


def render_report(run: RunData) -> str:
    """The report's HTML for an already loaded run."""
    ba = before_after(run)
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    images = {
        "cycles": plot_cycles(run.cycles),
        "breakdown": plot_breakdown(ba),
        "tradeoff": plot_tradeoff(tradeoff_points(run, ba)),
        "training": plot_training(run.cycles),
    }
    return env.from_string(_TEMPLATE).render(
        css=_CSS,
        toc=_TOC,
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
    path = Path(out) if out is not None else run.path / "report.html"
    write_text_atomic(path, render_report(run))
    return path
