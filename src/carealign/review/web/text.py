"""Showing untrusted text (model output, prompts, notes) in pages without letting it reorder the page.

Bidirectional formatting characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) in a
model's output can make what a reviewer reads differ from what was said: an override reverses the
text after it. :func:`show_controls` escapes the text and replaces each of them with a visible,
named marker; templates also isolate every piece of untrusted text (``<bdi>``, ``dir="auto"``
with ``unicode-bidi: isolate``) so that it cannot reorder its surroundings. Stored texts and
exports keep the characters as they were.
"""

from __future__ import annotations

import re
import unicodedata

from markupsafe import Markup, escape

#: The bidirectional formatting characters.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_CONTROL = re.compile(f"[{BIDI_CONTROLS}]")


def _marker(match: re.Match[str]) -> str:
    ch = match.group(0)
    name = unicodedata.name(ch, "BIDI CONTROL").lower()
    return f'<span class="ctl" title="{name}">[U+{ord(ch):04X}]</span>'


def show_controls(text: object) -> Markup:
    """``text`` escaped for HTML, with bidirectional controls shown as ``[U+202E]`` markers."""
    if text is None:
        return Markup("")
    return Markup(_CONTROL.sub(_marker, str(escape(str(text)))))
