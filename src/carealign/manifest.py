"""Run manifests: what went in (config, input hashes, seeds, versions, judges) and which stages finished."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from carealign.io import write_json_atomic

_TRACKED_PACKAGES = ("carealign", "torch", "transformers", "trl", "peft", "datasets", "accelerate")


def library_versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that decide results."""
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in _TRACKED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Manifest:
    """A JSON manifest in a run directory, rewritten atomically on every change."""

    def __init__(self, path: str | Path, data: dict[str, Any]) -> None:
        self.path = Path(path)
        self.data = data

    @classmethod
    def load(cls, path: str | Path) -> Manifest | None:
        p = Path(path)
        if not p.exists():
            return None
        return cls(p, json.loads(p.read_text(encoding="utf-8")))

    @classmethod
    def create(cls, path: str | Path, *, kind: str, config: dict[str, Any], **extra: Any) -> Manifest:
        data = {
            "kind": kind,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": config,
            "config_hash": sha256_json(config),
            "versions": library_versions(),
            "stages": {},
            **extra,
        }
        m = cls(path, data)
        m.save()
        return m

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def stage_done(self, name: str) -> bool:
        return self.data.get("stages", {}).get(name, {}).get("status") == "done"

    def mark(self, name: str, status: str, **info: Any) -> None:
        """Record a stage's status (``running`` or ``done``) with any details."""
        stage = self.data.setdefault("stages", {}).setdefault(name, {})
        stage.update(status=status, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info)
        self.save()
