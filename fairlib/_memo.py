"""A small in-process memory of the last few results of an expensive step, keyed by its inputs.

Several run functions of one sweep share a step (render the data, pretrain a backbone, train an
autoencoder) that depends on only some of their configuration. :class:`Memo` keeps the latest
``maxsize`` results of such a step, keyed by the canonical JSON of what the step depends on, so a
sweep in one process computes each once; a result is the same whether it was remembered or not
(tests clear the memories to check that). Only the latest few are kept: in the full profile a
step's result can be gigabytes.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Memo"]


class Memo:
    """The last ``maxsize`` results of a step, least recently used dropped first."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"maxsize: expected a positive integer, got {maxsize!r}")
        self.maxsize = maxsize
        self._entries: OrderedDict[str, Any] = OrderedDict()

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        """The canonical JSON of ``parts`` (sorted keys; other objects by their ``str``)."""
        return json.dumps(dict(parts), sort_keys=True, default=str)

    def get(self, parts: Mapping[str, Any], build: Callable[[], T]) -> T:
        """The remembered result for ``parts``, or ``build()``'s, which is then remembered."""
        key = self.key(parts)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = build()
        self._entries[key] = value
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
