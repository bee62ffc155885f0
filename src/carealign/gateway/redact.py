"""Redaction of e-mail addresses, phone numbers and record numbers before an exchange is stored.

Each match is replaced by a bracketed tag (``[EMAIL]``, ``[PHONE]``, ``[RECORD]``). The patterns
are deliberately simple and err towards redacting: a record number is a run of 6 or more digits
(optionally led by letters such as ``MRN``), or any token introduced by ``MRN``, ``record``,
``patient id`` and the like; a phone number is 7-15 digits with the usual separators.
"""

from __future__ import annotations

import re
from typing import Any

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
RECORD = re.compile(
    r"\b(?:MRN|NHS|record|chart|patient\s*(?:id|number|no\.?)|medical\s*record(?:\s*number)?)"
    r"\s*(?:#|no\.?|number|:)?\s*[A-Za-z]{0,3}[-\d]{4,}\b|\b[A-Za-z]{0,3}\d{6,}\b",
    re.IGNORECASE,
)
PHONE = re.compile(r"(?<![\w])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w])")
_PHONE_MIN_DIGITS = 7


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return "[PHONE]" if _PHONE_MIN_DIGITS <= digits <= 15 else match.group(0)


def redact_text(text: str) -> tuple[str, bool]:
    """The text with e-mail addresses, record numbers and phone numbers replaced; and whether any were."""
    out = EMAIL.sub("[EMAIL]", text)
    out = RECORD.sub("[RECORD]", out)
    out = PHONE.sub(_phone, out)
    return out, out != text


def redact_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """A conversation with every message's content redacted; and whether anything was."""
    changed = False
    out = []
    for m in messages:
        text, hit = redact_text(str(m.get("content", "")))
        changed = changed or hit
        out.append({**m, "content": text})
    return out, changed
