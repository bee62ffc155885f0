"""What the hardware can do, and the dtype that follows from it.

One decision, used by generation (the Hugging Face backend and the engines), by training
(TRL's ``bf16``) and by the judges' encoder: ``auto`` means bf16 only where the device has
bf16 arithmetic, else fp32.

- CUDA: bf16 where the GPU supports it (Ampere and later), else fp32.
- CPU: bf16 only when the CPU flags list ``avx512_bf16`` or ``amx_bf16``. PyTorch's
  ``get_cpu_capability()`` is not enough: it says ``AVX512`` on Xeons with and without bf16
  instructions, and bf16 without them is emulated and slower than fp32 (measured: 67 vs
  84.5 tok/s generating, 28 vs 6 s per DPO step on an AVX-512 Xeon without ``avx512_bf16``).

The CPU flags are read from ``/proc/cpuinfo`` (Linux); where that file does not exist the
CPU is taken to have no bf16 instructions. ``$CAREALIGN_CPU_FLAGS`` (space-separated)
replaces what the file says, for tests and for machines whose ``/proc`` hides the flags.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from carealign.errors import ModelError

if TYPE_CHECKING:
    import torch

#: CPU flags that mean native bf16 arithmetic (AVX-512 BF16 dot products, AMX tiles).
BF16_CPU_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})

#: Where Linux lists the CPU flags.
CPUINFO = Path("/proc/cpuinfo")

#: Names accepted for a dtype, and what each one means.
DTYPE_NAMES: dict[str, str] = {
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "fp32": "fp32",
    "float32": "fp32",
}


@functools.lru_cache(maxsize=8)
def _flags_from_file(path: str) -> frozenset[str]:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):  # x86, arm64
            return frozenset(value.split())
    return frozenset()


def cpu_flags(cpuinfo: str | Path | None = None) -> frozenset[str]:
    """The CPU's feature flags (lower case), from ``$CAREALIGN_CPU_FLAGS`` or ``/proc/cpuinfo``."""
    override = os.environ.get("CAREALIGN_CPU_FLAGS")
    if override is not None and cpuinfo is None:
        return frozenset(override.lower().split())
    return _flags_from_file(str(cpuinfo or CPUINFO))


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU computes in bf16 natively (``avx512_bf16`` or ``amx_bf16``)."""
    return bool(BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))


def normalize_dtype(dtype: str) -> str:
    """``auto``, ``bf16``, ``fp16`` or ``fp32`` for any accepted spelling; a clear error otherwise."""
    if dtype == "auto":
        return dtype
    try:
        return DTYPE_NAMES[dtype.lower()]
    except KeyError:
        raise ModelError(f"unknown dtype {dtype!r}; expected auto, bf16, fp16 or fp32") from None


def auto_dtype_name(device: str = "cpu", *, flags: frozenset[str] | None = None) -> str:
    """The dtype ``auto`` stands for on ``device`` (``cpu``, ``cuda``, ``cuda:N``): bf16 or fp32."""
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16(flags) else "fp32"


def resolve_dtype_name(dtype: str, device: str = "cpu", *, flags: frozenset[str] | None = None) -> str:
    """``dtype`` with ``auto`` replaced by what ``device`` computes fastest (see module notes)."""
    name = normalize_dtype(dtype)
    return auto_dtype_name(device, flags=flags) if name == "auto" else name


def torch_dtype(name: str) -> torch.dtype:
    """The ``torch.dtype`` of ``bf16``, ``fp16`` or ``fp32``."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[normalize_dtype(name)]


def train_bf16(on_cpu: bool, *, flags: frozenset[str] | None = None) -> bool:
    """TRL's ``bf16`` argument: on a GPU when it supports bf16; on a CPU only with bf16 instructions."""
    return auto_dtype_name("cpu" if on_cpu else "cuda", flags=flags) == "bf16"
