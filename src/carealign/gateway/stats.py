"""Watching the gateway: traffic per day, verdict mix by estimated harm level, flagged exchanges,
guard interventions, the serving policy over time, latency and the judging backlog.

:func:`gateway_stats` computes the figures (``carealign gateway stats`` prints them);
:func:`stats_plots` draws them with matplotlib for the review app's admin page.
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carealign.domain import Verdict
from carealign.gateway.export import parse_since
from carealign.gateway.models import Exchange, JudgeTask

VERDICTS = tuple(v.value for v in Verdict)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 2)


@dataclass
class GatewayStats:
    """The figures of an exchange log."""

    exchanges: int = 0
    judged: int = 0
    pending: int = 0
    per_day: dict[str, int] = field(default_factory=dict)
    verdicts_by_harm: dict[str, dict[str, int]] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    routed: int = 0
    guard_by_day: dict[str, dict[str, int]] = field(default_factory=dict)
    policies: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    overhead_ms: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def gateway_stats(db: Session, *, since: str | datetime | None = None, group: str | None = None) -> GatewayStats:
    """Compute the figures over the exchanges since ``since`` (of ``group``)."""
    cols = (
        Exchange.created_at,
        Exchange.harm_level,
        Exchange.verdict,
        Exchange.flags,
        Exchange.guard_action,
        Exchange.policy,
        Exchange.latency_ms,
        Exchange.generation_ms,
        Exchange.judged_at,
        Exchange.review_item_id,
    )
    q = select(*cols).order_by(Exchange.id)
    bound = parse_since(since)
    if bound is not None:
        q = q.where(Exchange.created_at >= bound)
    if group is not None:
        q = q.where(Exchange.group_name == group)
    s = GatewayStats()
    per_day: Counter[str] = Counter()
    mix: dict[str, Counter[str]] = defaultdict(Counter)
    flags: Counter[str] = Counter()
    guard: dict[str, Counter[str]] = defaultdict(Counter)
    policies: dict[str, dict[str, Any]] = {}
    latency: list[float] = []
    overhead: list[float] = []
    for row in db.execute(q.execution_options(yield_per=2000)):
        day = row.created_at.date().isoformat()
        s.exchanges += 1
        per_day[day] += 1
        if row.judged_at is not None:
            s.judged += 1
            mix["unknown" if row.harm_level is None else str(row.harm_level)][row.verdict or "none"] += 1
        for f in row.flags or []:
            flags[f] += 1
        if row.review_item_id is not None:
            s.routed += 1
        if row.guard_action and row.guard_action != "none":
            guard[day][row.guard_action] += 1
        p = policies.setdefault(
            row.policy, {"policy": row.policy, "first": row.created_at, "last": row.created_at, "n": 0}
        )
        p["first"] = min(p["first"], row.created_at)
        p["last"] = max(p["last"], row.created_at)
        p["n"] += 1
        latency.append(row.latency_ms)
        overhead.append(max(0.0, row.latency_ms - row.generation_ms))
    s.pending = int(db.scalar(select(func.count()).select_from(JudgeTask)) or 0)
    s.per_day = dict(sorted(per_day.items()))
    s.verdicts_by_harm = {k: {v: mix[k].get(v, 0) for v in VERDICTS} for k in sorted(mix)}
    s.flags = dict(flags.most_common())
    s.guard_by_day = {d: dict(c) for d, c in sorted(guard.items())}
    s.policies = [
        {"policy": p["policy"], "first": p["first"].isoformat(), "last": p["last"].isoformat(), "exchanges": p["n"]}
        for p in sorted(policies.values(), key=lambda p: p["first"])
    ]
    s.latency_ms = {"p50": _percentile(latency, 0.5), "p99": _percentile(latency, 0.99)}
    s.overhead_ms = {"p50": _percentile(overhead, 0.5), "p99": _percentile(overhead, 0.99)}
    return s


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def stats_plots(s: GatewayStats) -> dict[str, str]:
    """PNG plots (as data URIs) of the figures: traffic, verdict mix, guard interventions, policies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    days = list(s.per_day)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(days, [s.per_day[d] for d in days], color="#3b6ea5")
    ax.set_title("Exchanges per day")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    plots["traffic"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 2.6))
    levels = list(s.verdicts_by_harm)
    colours = {"Accept": "#4c9f70", "Caution": "#e0a030", "Refuse": "#c0504d", "Unscored": "#999999"}
    bottom = [0] * len(levels)
    for v in VERDICTS:
        counts = [s.verdicts_by_harm[lv].get(v, 0) for lv in levels]
        ax.bar([f"level {lv}" for lv in levels], counts, bottom=bottom, label=v, color=colours[v])
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_title("Verdicts by estimated harm level")
    ax.legend(fontsize=8, ncol=4)
    plots["verdicts"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 2.6))
    gdays = list(s.guard_by_day)
    for action, colour in (("decline", "#c0504d"), ("regenerate", "#e0a030")):
        ax.plot(gdays, [s.guard_by_day[d].get(action, 0) for d in gdays], marker="o", label=action, color=colour)
    ax.set_title("Guard interventions per day")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    ax.legend(fontsize=8)
    plots["guard"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.4 * max(1, len(s.policies))))
    for i, p in enumerate(s.policies):
        first, last = datetime.fromisoformat(p["first"]), datetime.fromisoformat(p["last"])
        width = max((last - first).total_seconds() / 86400, 0.01)
        ax.barh(i, width, left=mdates.date2num(first), height=0.5, color="#3b6ea5")
    ax.set_yticks(range(len(s.policies)), [_short(p["policy"]) for p in s.policies], fontsize=8)
    ax.xaxis_date()
    ax.set_title("Serving policy over time")
    plots["policies"] = _png(fig)
    return plots


def _short(policy: str, width: int = 48) -> str:
    return policy if len(policy) <= width else "…" + policy[-(width - 1) :]
