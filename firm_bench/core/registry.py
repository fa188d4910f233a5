"""A small name -> object registry, the one mechanism behind every concept.

Losses, datasets, outlier generators, scores and encoders each live in one
``Registry``. Entries are added once, at import, by decorating the object::

    LOSSES = Registry("loss")

    @LOSSES.register("firm")
    def firm_mask(labels): ...

``LOSSES.get("frim")`` raises ``KeyError: unknown loss 'frim'; valid: firm, ...``
so a typo never silently falls through an if-chain. The same names feed the
CLI ``choices``, the Snakemake wildcard constraints and the schema enums.

A registry may say what planning and reading results need to know about each
entry without importing it: ``facts(name, obj) -> dict`` of JSON values (a
dataset's classes and sizes, a score's family, a loss's reference form).
``firm_bench.core.catalog`` reads those facts from a stored snapshot, so
planning imports no torch. A registry the catalog keeps names its catalog
key (``catalog="loss.name"``); ``Registry.index()`` maps those keys to the
registries created in this process (the catalog's view of what is loaded,
never an import).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Generic, Iterator, TypeVar

from firm_bench.core.errors import UnknownNameError

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T")
Facts = Callable[[str, Any], dict]


class Registry(Generic[T]):
    """Ordered mapping from a name to a registered object of one kind.

    kind: what an entry is ("loss", "dataset", ...), used in messages.
    catalog: the key under which ``firm_bench.core.catalog`` keeps this
    registry (``dataset.name``, ``tables``, ...); None = not kept.
    facts, meta: see the module docstring.
    """

    _index: ClassVar[dict[str, "Registry[Any]"]] = {}

    def __init__(self, kind: str, catalog: str | None = None, facts: Facts | None = None,
                 meta: dict | None = None) -> None:
        if catalog is not None and catalog in Registry._index:
            raise ValueError(f"a registry for catalog key {catalog!r} exists already")
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._facts = facts
        self.meta = dict(meta or {})  # JSON facts of the registry as a whole (e.g. the loss forms)
        if catalog is not None:
            Registry._index[catalog] = self

    @classmethod
    def index(cls) -> dict[str, "Registry[Any]"]:
        """The registries the catalog keeps that exist in this process, by catalog key (a copy)."""
        return dict(cls._index)

    def facts(self, name: str) -> dict:
        """The JSON-able facts of entry ``name`` (empty when the registry keeps none)."""
        return dict(self._facts(name, self.get(name))) if self._facts is not None else {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (once; duplicates raise)."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` without a decorator."""
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self.names()))}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
