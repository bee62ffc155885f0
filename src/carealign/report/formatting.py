"""Text formatting shared by the HTML reports: metric values, intervals, changes, labels, cut texts.

Every formatter takes whatever a JSON file held (a number, ``None``, a string, a list) and returns a
string; a missing or non-finite number shows as :data:`DASH`, a missing interval as an empty string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from carealign.domain import HARM_LEVELS

#: What a missing value shows as.
DASH = "–"
#: Texts longer than this are cut in the run report's examples section.
MAX_TEXT_CHARS = 600


def is_num(value: Any) -> TypeGuard[int | float]:
    """Whether ``value`` is a finite int or float (``bool`` is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def ci_pair(ci: Any) -> tuple[float, float] | None:
    """A ``[low, high]`` interval as two floats, or None when it is not two finite numbers."""
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(is_num(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def fmt_value(value: Any, *, percent: bool = False) -> str:
    """A metric value: a share as a percentage, a score with 3 decimals, a dash when missing."""
    if not is_num(value):
        return DASH
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def fmt_percent(value: Any) -> str:
    """A share as a percentage with one decimal (``12.5%``), a dash when missing."""
    return fmt_value(value, percent=True)


def fmt_ci(ci: Any, *, percent: bool = False) -> str:
    """A 95% interval as ``[low, high]`` (empty when missing)."""
    pair = ci_pair(ci)
    if pair is None:
        return ""
    lo, hi = pair
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]" if percent else f"[{lo:.3f}, {hi:.3f}]"


def fmt_interval(ci: Any, *, pp: bool = False) -> str:
    """An interval with 3 decimals, or with ``pp`` as signed percentage points; empty when missing.

    Unlike :func:`fmt_ci` it accepts any two non-None numbers (the agreement report's intervals).
    """
    if not isinstance(ci, list | tuple) or len(ci) != 2 or any(v is None for v in ci):
        return ""
    return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] pp" if pp else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def fmt_signed(value: Any, *, percent: bool = False) -> str:
    """A change: percentage points for shares, 3 signed decimals for scores."""
    if not is_num(value):
        return DASH
    return f"{100 * value:+.1f} pp" if percent else f"{value:+.3f}"


def fmt_number(value: Any, digits: int = 4) -> str:
    """A count as it is, any other number with ``digits`` significant digits, a dash when missing."""
    if not is_num(value):
        return DASH
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def fmt_fixed(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals (counts too), a dash when missing."""
    if not is_num(value):
        return DASH
    return f"{value:.{digits}f}"


def change_class(delta: Any, better: int) -> str:
    """The CSS class of a change: ``good`` in the ``better`` direction (+1 or -1), ``bad`` against it, else empty."""
    if not is_num(delta) or abs(delta) < 1e-12:
        return ""
    return "good" if delta * better > 0 else "bad"


def truncate(text: Any, limit: int = MAX_TEXT_CHARS) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters (with an ellipsis), and whether it was cut."""
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return s, False
    return s[:limit].rstrip() + " …", True


def shorten(name: str, limit: int = 30) -> str:
    """``name`` cut to ``limit`` characters, the last one an ellipsis (for plot labels)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def harm_level(value: Any) -> int | None:
    """A harm level as an int, or None when ``value`` is missing or not a whole number."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def level_label(key: Any) -> str:
    """``level 2 (moderately harmful ...)`` for a known harm level, ``level KEY`` otherwise."""
    lv = harm_level(key)
    return f"level {key}" if lv is None or lv not in HARM_LEVELS else f"level {lv} ({HARM_LEVELS[lv]})"


def level_name(level: str) -> str:
    """``2 (moderately harmful ...)``: a harm level key of a JSON block with its description."""
    lv = int(level)
    return f"{lv} ({HARM_LEVELS.get(lv, '')})"


def group_keys(*blocks: Mapping[str, Any] | None) -> list[str]:
    """The keys of several breakdown blocks together: numeric keys in numeric order first, then the rest."""
    keys: set[str] = set()
    for b in blocks:
        keys |= set(b or {})

    def order(k: str) -> tuple[int, int | str]:
        return (0, int(k)) if k.isdigit() else (1, k)

    return sorted(keys, key=order)
