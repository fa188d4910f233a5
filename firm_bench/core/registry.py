"""A small name -> object registry, the one mechanism behind every concept.

Losses, datasets, outlier generators, scores and encoders each live in one
``Registry``. Entries are added once, at import, by decorating the object::

    LOSSES = Registry("loss")

    @LOSSES.register("firm")
    def firm_mask(labels): ...

``LOSSES.get("frim")`` raises ``KeyError: unknown loss 'frim'; valid: firm, ...``
so a typo never silently falls through an if-chain. The same names feed the
CLI ``choices``, the Snakemake wildcard constraints and the schema enums.

A registry names the torch-free records of its names' facts
(``firm_bench.core.facts``: ``Registry("loss", facts=facts.method.LOSSES)``)
and refuses to register a name without one, so what planning and config
validation read without torch is declared once, before the code.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from firm_bench.core.errors import UnknownNameError

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Ordered mapping from a name to a registered object of one kind.

    kind: what an entry is ("loss", "dataset", ...), used in messages.
    facts: the records of the names it may hold (``firm_bench.core.facts``); None = any name.
    """

    def __init__(self, kind: str, facts: Mapping[str, Any] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._facts = facts

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (once; duplicates raise)."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self._facts is not None and name not in self._facts:
                raise ValueError(f"{self.kind} {name!r} has no facts record: declare it in firm_bench/core/facts/ "
                                 "(the torch-free records planning and config validation read) first")
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
