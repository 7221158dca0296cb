"""Outcomes as types: how an exported file fared, instead of free-form status strings.

The values are the strings already written to ``export_report.json`` and ``manifest.json``
(``"passed"``, ``"failed"``…), so files written before stay readable and ``status == "passed"``
still holds; code branches on the members, never on the text.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """How one file (or one runtime's run of it) did against its checks."""

    PASSED = "passed"  # made, and every parity bound held
    FAILED = "failed"  # made, but a parity bound missed (the reason lists which)
    REFUSED = "refused"  # not made for the runtime asked for (``--target``); the reason says why
    ERROR = "error"  # could not be converted, loaded or run; the reason is the error
    SKIPPED = "skipped"  # a check that was not run (its runtime is not installed)

    def __str__(self) -> str:  # f"{Status.PASSED}" is "passed" on every Python version
        return self.value

    @property
    def made(self) -> bool:
        """True when a file was produced (it may still have missed a bound)."""
        return self in (Status.PASSED, Status.FAILED)
