"""Where carealign keeps what it converts (models from GGUF, engine conversions): one leaf module."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where converted models live: ``$CAREALIGN_CACHE`` or ``~/.cache/carealign``."""
    return Path(os.environ.get("CAREALIGN_CACHE", Path.home() / ".cache" / "carealign"))
