"""timm-style plug-in registries: ``@register_strategy("name")`` and ``list_strategies()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        self._load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def _load_builtins(self) -> None:
        # Importing the built-in plug-in packages registers them; done lazily so that
        # ``import search`` stays cheap and cycle-free.
        import importlib

        for mod in _BUILTIN_MODULES.get(self.kind, ()):
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as exc:  # a plug-in module not written/installed yet
                if exc.name != mod:
                    raise


_BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "strategy": ("archlore.search.strategies",),
    "space": ("archlore.search.spaces",),
    "backend": ("archlore.search.backends.pool", "archlore.search.backends.table",
                "archlore.search.backends.ray"),
    "objective": ("archlore.search.objectives",),
}

STRATEGIES: Registry = Registry("strategy")
SPACES: Registry = Registry("space")
BACKENDS: Registry = Registry("backend")
OBJECTIVES: Registry = Registry("objective")
register_strategy = STRATEGIES.register
register_space = SPACES.register
register_backend = BACKENDS.register


def list_strategies() -> list[str]:
    return STRATEGIES.names()


def list_spaces() -> list[str]:
    return SPACES.names()


def list_backends() -> list[str]:
    return BACKENDS.names()


def list_objectives() -> list[str]:
    return OBJECTIVES.names()
