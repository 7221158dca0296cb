"""One registry type for everything looked up by name: presets, export formats, backends, targets.

Modelled on timm's ``@register_model``: registering a name twice warns (the later one wins), an
unknown name raises one :class:`~edgeclf.runtime.errors.UnknownNameError` listing the known names, and
the command line builds its choices and help text from :meth:`Registry.names` instead of keeping a
copy. It lives in ``edgeclf.runtime`` (standard library only) so the runtime's backends can use it too.

>>> colours = Registry("colour")
>>> colours.register("red", (255, 0, 0))
(255, 0, 0)
>>> colours.get("red")
(255, 0, 0)
>>> colours.names()
('red',)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

from edgeclf.runtime.errors import UnknownNameError

T = TypeVar("T")
_MISSING = object()


class Registry(MutableMapping[str, T], Generic[T]):
    """Named items in registration order.

    Args:
        kind: what the items are, for messages (``"export format"`` → ``unknown export format 'x'``).
        loader: called once, before the first lookup, to import the modules that register the
            built-in items (keeps importing the registry itself cheap).
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loader = loader

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader()

    def register(self, name: str, item: T) -> T:
        """Add ``item`` as ``name`` and return it; a name registered before warns and is replaced."""
        if name in self._items:
            warnings.warn(f"Overwriting {self.kind} {name!r} in registry", UserWarning, stacklevel=2)
        self._items[name] = item
        return item

    def get(self, name: str, default: object = _MISSING) -> T:  # type: ignore[override]
        """The item registered as ``name`` (or ``default`` when one is given and the name is unknown).

        Raises:
            UnknownNameError: ``name`` is not registered and no default was given (the message
                lists the known names).
        """
        self._load()
        try:
            return self._items[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from a config file
            if default is not _MISSING:
                return default  # type: ignore[return-value]
            raise UnknownNameError(self.kind, name, tuple(self._items)) from None

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        self._load()
        return tuple(self._items)

    def help_list(self) -> str:
        """The names as one comma-separated string, for ``--help`` texts."""
        return ", ".join(self.names())

    # Mapping protocol: ``registry[name]`` is ``get``; ``registry[name] = item`` replaces quietly
    # (what ``monkeypatch.setitem`` does in tests), ``del`` removes.
    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, item: T) -> None:
        self._load()
        self._items[name] = item

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        try:
            return name in self._items
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._items))

    def __len__(self) -> int:
        self._load()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"
