"""Named plug-in points: judges, generation engines and training methods, each in one :class:`Registry`.

A registry maps a name to a factory. Built-ins register themselves with the :meth:`Registry.register`
decorator where they are defined; third-party packages add theirs without editing carealign,
through an entry-point group (``carealign.judges``, ``carealign.engines``, ``carealign.training``)
in their own ``pyproject.toml``::

    [project.entry-points."carealign.judges"]
    my-judge = "my_package.judges:make_my_judge"

Entry points are read the first time a name is not found among the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[F]):
    """One registered name: its factory and a line of help."""

    name: str
    factory: F
    help: str = ""
    builtin: bool = False


class Registry(Generic[F]):
    """Name -> factory, filled by decorators and by an entry-point group."""

    def __init__(self, group: str, what: str) -> None:
        self.group = group
        self.what = what
        self._entries: dict[str, Entry[F]] = {}
        self._entry_points_loaded = False

    def register(self, name: str, *, help: str = "", builtin: bool = False) -> Callable[[F], F]:
        """Decorator: register the decorated factory under ``name``."""

        def deco(factory: F) -> F:
            self.add(name, factory, help=help, builtin=builtin)
            return factory

        return deco

    def add(self, name: str, factory: F, *, help: str = "", builtin: bool = False) -> None:
        """Register ``factory`` under ``name``; a built-in name cannot be replaced."""
        old = self._entries.get(name)
        if old is not None and old.builtin and not builtin:
            raise ValueError(f"{name!r} is a built-in {self.what} name")
        self._entries[name] = Entry(name, factory, help, builtin)

    def remove(self, name: str) -> None:
        """Forget a name registered by a plug-in (built-ins stay)."""
        entry = self._entries.get(name)
        if entry is not None and not entry.builtin:
            del self._entries[name]

    def get(self, name: str) -> F | None:
        """The factory registered as ``name`` (looking in the entry-point group once), or None."""
        if name not in self._entries:
            self._load_entry_points()
        entry = self._entries.get(name)
        return entry.factory if entry is not None else None

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[Entry[F]]:
        self._load_entry_points()
        return iter(list(self._entries.values()))

    def names(self) -> list[str]:
        return [e.name for e in self]

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.group):
            if ep.name not in self._entries:
                try:
                    self.add(ep.name, ep.load(), help=f"from {ep.value}")
                except Exception as exc:  # a broken plug-in must not break carealign
                    import warnings

                    warnings.warn(
                        f"{self.group} entry point {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2
                    )
