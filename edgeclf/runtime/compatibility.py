"""The exporter's per-runtime verdicts on an artifact, parsed in one place.

A manifest's ``Artifact.compatibility`` maps a runtime, optionally with a version requirement
(``"litert"``, ``"tflite-runtime==2.14"``), to ``"ok"`` or to a one-line reason it cannot run the
file (``"FULLY_CONNECTED v12 is newer than tflite-runtime 2.14 has"``). The JSON keeps exactly that
shape (manifests already written read the same); code reads it through :class:`Compatibility`.

>>> Compatibility.parse("tflite-runtime==2.14", "ok")
Compatibility(key='tflite-runtime==2.14', runtime='tflite-runtime', requirement='==2.14', verdict='ok')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

OK = "ok"  # the one verdict that means "loads and matches"; anything else is the reason it does not

# A runtime name, then an optional requirement: "==2.14", ">=2.14", " 2.14"…
_KEY = re.compile(r"^\s*([^\s=<>!~]*)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Compatibility:
    """One entry: whether ``runtime`` (a backend name) can run the artifact, and if not, why.

    Attributes:
        key: the entry's key as written (``"tflite-runtime==2.14"``).
        runtime: the backend name in it (``"tflite-runtime"``).
        requirement: the version part (``"==2.14"``), empty when none.
        verdict: ``"ok"`` or the one-line reason.
    """

    key: str
    runtime: str
    requirement: str
    verdict: str

    @classmethod
    def parse(cls, key: str, verdict: str) -> Compatibility:
        """Split ``key`` into runtime and requirement; the verdict is kept as written."""
        runtime, requirement = _KEY.match(key).groups()  # type: ignore[union-attr]  # the pattern matches any text
        return cls(key, runtime, requirement, verdict)

    @property
    def ok(self) -> bool:
        """True when the exporter found the file runs in this runtime."""
        return self.verdict.strip().lower() == OK

    def problem(self) -> str | None:
        """``"<key>: <reason>"`` when the runtime cannot run the file, else ``None``."""
        return None if self.ok else f"{self.key}: {self.verdict}"


def parse_entries(entries: Mapping[str, str]) -> tuple[Compatibility, ...]:
    """Every entry of an ``Artifact.compatibility`` mapping, parsed, in the order written."""
    return tuple(Compatibility.parse(key, verdict) for key, verdict in entries.items())


def verdict_for(entries: Mapping[str, str], runtime: str) -> Compatibility | None:
    """The entry that decides whether ``runtime`` (a backend name, any version) runs the file.

    The first entry for it that says it cannot, else the first that says ``ok``; ``None`` when the
    exporter recorded nothing for that runtime.
    """
    mine = [entry for entry in parse_entries(entries) if entry.runtime == runtime]
    return next((entry for entry in mine if not entry.ok), mine[0] if mine else None)
