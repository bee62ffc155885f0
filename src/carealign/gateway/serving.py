"""The policy being served: loaded from a model spec, reloaded when a run promotes a new policy.

A spec is anything ``carealign eval --model`` takes (a registered name, a model directory, a hub
id, ``openai:MODEL@URL``) or an alignment run directory, which serves its latest promoted policy.
:meth:`ServedPolicy.reload` resolves the spec again and, when it now names another model (or the
same directory with other files), loads it and swaps it in between requests; requests in flight
finish on the old one. The identity recorded with each exchange names the backend, the resolved
model and a fingerprint of its files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from carealign.generate import GenerationConfig, load_generator, resolve_model_path
from carealign.generate.base import Completion
from carealign.generate.registry import model_fingerprint

T = TypeVar("T")


def _is_run_dir(spec: str) -> bool:
    p = Path(spec).expanduser()
    return p.is_dir() and not (p / "config.json").exists() and (p / "manifest.json").exists()


def resolve_target(spec: str) -> tuple[str, str | None]:
    """(what to load, fingerprint of its files) for a spec as it stands now: a run directory
    resolves to its promoted policy; a remote endpoint has no fingerprint."""
    if spec.startswith("openai:"):
        return spec, None
    target = resolve_model_path(spec) if _is_run_dir(spec) else spec
    return target, model_fingerprint(target)


class InFlight:
    """How many requests are being answered now; lets background work (monitor-mode judging) wait
    until the model is idle instead of taking CPU from a generation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._idle = threading.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    def busy(self) -> bool:
        """Whether a request is being answered (waiting for the model, generating or being stored)."""
        return self._count > 0

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight or ``timeout`` seconds have passed; whether it is idle."""
        return self._idle.wait(timeout)

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count one request as in flight for the duration of the block."""
        with self._lock:
            self._count += 1
            self._idle.clear()
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                if self._count == 0:
                    self._idle.set()


@dataclass
class Loaded:
    """One loaded policy: its generator, what it was loaded from, and how requests reach it.

    A backend in this process (``transformers``) runs one request at a time on one dedicated thread,
    fed in arrival order: no request waits behind later ones, and the model's thread pools are not
    rebuilt for every calling thread. A remote backend (``openai:``) takes requests concurrently.
    """

    generator: Any
    target: str
    fingerprint: str | None
    runner: ThreadPoolExecutor | None = None

    @property
    def identity(self) -> str:
        """The backend's identity (``hf:PATH``, ``openai:MODEL@URL``) and, for local files, their fingerprint."""
        ident = str(self.generator.identity)
        return f"{ident}#{self.fingerprint}" if self.fingerprint else ident

    def _run(self, fn: Callable[[], T]) -> T:
        return fn() if self.runner is None else self.runner.submit(fn).result()

    def generate(self, conversation: list[dict[str, str]], config: GenerationConfig) -> Completion:
        """One completion of one conversation."""
        return self._run(lambda: self.generator.generate_chat([conversation], config)[0][0])

    def count_tokens(self, conversation: list[dict[str, str]]) -> int | None:
        """Prompt tokens of a conversation where the backend has a tokenizer, else None."""
        render = getattr(self.generator, "render", None)
        tokenizer = getattr(self.generator, "tokenizer", None)
        if render is None or tokenizer is None:
            return None
        return len(tokenizer(render(conversation), add_special_tokens=False)["input_ids"])


class ServedPolicy:
    """The current policy for a spec; :meth:`reload` picks up a newly promoted one."""

    def __init__(self, spec: str, *, dtype: str = "auto", device: str = "auto", generator: Any | None = None) -> None:
        self.spec = spec
        self._dtype, self._device = dtype, device
        self._reload_lock = threading.Lock()
        #: Requests being answered by whichever policy is current (kept across reloads).
        self.in_flight = InFlight()
        target, fingerprint = resolve_target(spec) if generator is None else (spec, model_fingerprint(spec))
        self._current = self._load(target, fingerprint, generator)

    def _load(self, target: str, fingerprint: str | None, generator: Any | None = None) -> Loaded:
        gen = generator if generator is not None else load_generator(target, dtype=self._dtype, device=self._device)
        from carealign.generate.openai_api import OpenAIGenerator

        runner = None if isinstance(gen, OpenAIGenerator) else ThreadPoolExecutor(1, thread_name_prefix="policy")
        return Loaded(gen, target, fingerprint, runner)

    @property
    def current(self) -> Loaded:
        return self._current

    @property
    def identity(self) -> str:
        return self._current.identity

    def reload(self) -> tuple[bool, str]:
        """Resolve the spec again and load it if it changed; (changed, identity now served)."""
        with self._reload_lock:
            target, fingerprint = resolve_target(self.spec)
            if (target, fingerprint) == (self._current.target, self._current.fingerprint):
                return False, self._current.identity
            self._current = self._load(target, fingerprint)
            return True, self._current.identity
