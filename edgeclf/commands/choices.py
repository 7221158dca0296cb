"""Choices and help texts of the command line, built from the registries, never a hand-kept copy.

``--backend`` and ``--target`` accept exactly the registered names; format options list the
registered formats in their help. Every command that takes formats spells the option the same way:
``-f/--format`` (``--formats`` is still accepted), repeated or comma-separated where several make sense.
"""

from __future__ import annotations

from enum import Enum

from edgeclf.runtime.backends import BACKENDS
from edgeclf.runtime.classifier import FORMAT_PREFERENCE

# The spellings of the format option, in every command (``--formats`` is the older one of export/benchmark).
FORMAT_FLAGS = ("--format", "-f")
FORMATS_FLAGS = ("--format", "--formats", "-f")


def choices(name: str, names: tuple[str, ...]) -> type[Enum]:
    """A ``str`` Enum of ``names`` for typer (it shows and checks an Enum's values as the choices)."""
    return Enum(name, [(n, n) for n in names], type=str)  # type: ignore[return-value]


# Built from the registries at import; typer reads ``member.value``.
BackendChoice = choices("BackendChoice", BACKENDS.names())


def backend_list() -> str:
    """The registered backends, in preference order."""
    return BACKENDS.help_list()


def target_choices() -> type[Enum]:
    """``--target``: the registered runtimes an export can be made for."""
    from edgeclf.exporter.context import TARGETS

    return choices("TargetChoice", TARGETS.names())


def target_list() -> str:
    """Each registered ``--target`` with what it means."""
    from edgeclf.exporter.context import TARGETS

    return "; ".join(f"{name}: {description}" for name, description in TARGETS.items())


def runtime_format_list() -> str:
    """The formats a run folder can hold, in the order ``classify`` picks them."""
    return ", ".join(FORMAT_PREFERENCE)


def export_format_list() -> str:
    """The registered export formats, in registration order."""
    from edgeclf.exporter.formats import FORMATS

    return FORMATS.help_list()


def split_names(values: list[str] | None) -> tuple[str, ...]:
    """``-f a -f b,c`` → ``("a", "b", "c")``: repeated and comma-separated values, blanks dropped."""
    return tuple(v.strip() for raw in values or () for v in raw.split(",") if v.strip())
