"""Public prompt sets shipped with carealign: MedSafetyBench (harmful) and MedQuAD (benign).

Both are copies of public datasets (attribution in NOTICE), converted to JSONL under
``carealign/resources/public/``:

- ``medsafetybench``: 900 harmful medical requests (MedSafetyBench's training split, nine
  categories after the AMA Principles of Medical Ethics), each with a refusal or safe
  redirection written for it. Loaded as harm level 3.
- ``medquad``: 3,000 benign consumer-health questions (MedQuAD collections GARD, GHR and
  MedlinePlus Health Topics), each with the NIH answer text. Loaded as harm level 0.

Each has a fixed held-out part, decided by the row's id alone (so it never changes when rows are
added or reordered): a row is in ``test`` when the first 8 hex digits of the SHA-256 of its id,
read as an integer, are divisible by 5 (about 20%: 149 of MedSafetyBench's rows, 617 of
MedQuAD's), else in ``train``. No training stage may use the ``test`` part; the evaluation of
alignment runs and of judges reads it.

The written response of each row (the safe response, or the NIH answer) travels with the prompt
as :attr:`PromptRecord.reference_response`, for the demonstration stage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from carealign.data.records import PromptRecord
from carealign.errors import DataError
from carealign.io import read_jsonl

PUBLIC_SPLITS = ("train", "test")


@dataclass(frozen=True)
class PublicSource:
    """One shipped public prompt set."""

    name: str
    file: str
    harm_level: int
    response_field: str
    description: str


PUBLIC_SOURCES: dict[str, PublicSource] = {
    "medsafetybench": PublicSource(
        name="medsafetybench",
        file="medsafetybench.jsonl",
        harm_level=3,
        response_field="safe_response",
        description="MedSafetyBench harmful medical requests (harm level 3) with written safe responses",
    ),
    "medquad": PublicSource(
        name="medquad",
        file="medquad.jsonl",
        harm_level=0,
        response_field="answer",
        description="MedQuAD benign consumer-health questions (harm level 0) with NIH answers",
    ),
}


def public_split(row_id: str) -> str:
    """``test`` for the fixed held-out part of a public set, else ``train`` (decided by the id alone)."""
    return "test" if int(hashlib.sha256(row_id.encode("utf-8")).hexdigest()[:8], 16) % 5 == 0 else "train"


def public_path(name: str) -> Path:
    """Path of a shipped public set's JSONL file."""
    source = PUBLIC_SOURCES[name]
    return Path(str(resources.files("carealign").joinpath(f"resources/public/{source.file}")))


def load_public(name: str, split: str = "test") -> list[PromptRecord]:
    """Load a shipped public set (``medsafetybench`` or ``medquad``): ``train``, ``test`` or ``all``."""
    if name not in PUBLIC_SOURCES:
        raise DataError(f"unknown public prompt set {name!r}; expected one of {', '.join(PUBLIC_SOURCES)}")
    if split not in (*PUBLIC_SPLITS, "all"):
        raise DataError(f"unknown split {split!r}; {name} has {', '.join(PUBLIC_SPLITS)} (or all)")
    source = PUBLIC_SOURCES[name]
    path = public_path(name)
    records: list[PromptRecord] = []
    for rowno, row in enumerate(read_jsonl(path), start=1):
        rid = row.get("id")
        prompt = row.get("prompt")
        if not isinstance(rid, str) or not isinstance(prompt, str) or not prompt.strip():
            raise DataError("expected a text id and a non-empty prompt", path=path, row=rowno)
        row_split = public_split(rid)
        if split != "all" and row_split != split:
            continue
        reference = row.get(source.response_field)
        records.append(
            PromptRecord(
                id=rid,
                prompt=prompt,
                harm_level=source.harm_level,
                method="direct",
                base_prompt_id=rid,
                source=name,
                split=row_split,
                reference_response=reference if isinstance(reference, str) and reference.strip() else None,
            )
        )
    return records
