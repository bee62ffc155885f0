"""A cache of engine conversions, keyed by the content hash of the Hugging Face checkpoint.

An inference engine runs its own format (CTranslate2's ``model.bin``, ONNX, ...). A checkpoint
is converted once, into ``<cache_dir>/engines/<engine>/<variant>-<hash>/``, where ``hash``
covers every file of the checkpoint directory that defines the model (config, weights,
tokenizer, chat template) by content, so that a new promoted policy written in the same
place gets its own conversion, and an unchanged one is reused whatever its path. The
conversion is written into a temporary directory beside its target and renamed into place,
so a crash never leaves a half-converted model that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from carealign.errors import ModelError
from carealign.generate.cache import cache_dir

#: Files that say nothing about the model's outputs and are left out of its hash.
_IGNORED = frozenset({"README.md", "manifest.json", "training_args.bin", "log.jsonl", ".gitattributes"})

#: Written last into a finished conversion.
DONE_MARKER = ".carealign-converted"


def checkpoint_hash(model_dir: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a checkpoint's files: names and contents, in name order."""
    root = Path(model_dir)
    if not (root / "config.json").is_file():
        raise ModelError(f"{root}: not a Hugging Face model directory (no config.json)")
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if f.name in _IGNORED or rel.startswith(".") or "/." in rel:
            continue
        h.update(rel.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:16]


def conversion_dir(engine: str, variant: str, model_dir: str | Path) -> Path:
    """Where the conversion of ``model_dir`` for ``engine`` (in ``variant``, e.g. a dtype) lives."""
    return cache_dir() / "engines" / engine / f"{variant}-{checkpoint_hash(model_dir)}"


def cached_conversion(
    engine: str,
    variant: str,
    model_dir: str | Path,
    convert: Callable[[Path, Path], None],
) -> tuple[Path, bool]:
    """The converted model for ``model_dir``, converting it first when not cached.

    ``convert(model_dir, out_dir)`` writes the engine's files into the (empty) ``out_dir``.
    Returns the directory and whether it was converted now (False: reused from the cache).
    """
    target = conversion_dir(engine, variant, model_dir)
    if (target / DONE_MARKER).exists():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        convert(Path(model_dir), tmp)
        (tmp / DONE_MARKER).write_text(f"{engine} {variant} of {Path(model_dir).resolve()}\n")
        if target.exists():  # an unfinished leftover (no marker): replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / DONE_MARKER).exists():  # lost a race only if the winner finished
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target, True
