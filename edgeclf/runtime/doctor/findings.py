"""The doctor's vocabulary: a :class:`Finding` and the :class:`System` it looks at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeclf.runtime.child import child_env
from edgeclf.runtime.errors import first_line

STATUSES = ("ok", "info", "warn", "fail")


@dataclass(frozen=True)
class Finding:
    """One thing the doctor checked: ``status`` is ok, info, warn or fail; ``fix`` says what to do."""

    check: str
    status: str
    message: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def format_finding(finding: Finding) -> str:
    """``[warn] check: message — fix: ...`` on one line."""
    text = f"[{finding.status}] {finding.check}: {finding.message}"
    return f"{text} — fix: {finding.fix}" if finding.fix else text


@dataclass(frozen=True)
class System:
    """Where the doctor looks. Defaults are the real machine; tests give a fake ``root`` and so on.

    Attributes:
        root: prefix of ``/proc``, ``/sys``, ``/dev``, ``/etc`` and ``/usr/lib/python3/dist-packages``.
        python: the interpreter whose packages are probed (in subprocesses).
        vcgencmd: path of the Raspberry Pi firmware tool, or ``None`` when it is not installed.
        uid, groups: user and group ids of the user (for /dev/video* access).
        disk_path: the folder whose free space matters (the run folder, else the current one).
        probe_timeout: seconds a subprocess probe may take.
    """

    root: Path = Path("/")
    python: str = sys.executable
    vcgencmd: str | None = field(default_factory=lambda: shutil.which("vcgencmd"))
    uid: int = field(default_factory=os.getuid)
    groups: tuple[int, ...] = field(default_factory=lambda: tuple(os.getgroups()))
    disk_path: Path = Path(".")
    probe_timeout: float = 60.0

    def path(self, absolute: str) -> Path:
        """``absolute`` (e.g. ``/proc/meminfo``) under :attr:`root`."""
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str | None:
        """Text of a system file, or ``None`` when it is missing or unreadable."""
        try:
            return self.path(absolute).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def run_python(self, code: str, *args: str) -> dict[str, Any]:
        """Run ``code`` in :attr:`python` and return the JSON it prints last, or why it did not.

        The result always has ``ok`` (bool) and, when not ok, ``error`` (one line).
        """
        env = child_env()  # so the subprocess imports this edgeclf.runtime
        try:
            done = subprocess.run(
                [self.python, "-c", code, *args],
                capture_output=True,
                text=True,
                timeout=self.probe_timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"no answer within {self.probe_timeout:.0f} s"}
        except OSError as error:
            return {"ok": False, "error": f"cannot run {self.python} ({error.strerror or error})"}
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode < 0:
            return {"ok": False, "error": f"crashed with signal {-done.returncode}"}
        if lines:
            try:
                result = json.loads(lines[-1])
            except json.JSONDecodeError:
                pass
            else:
                if not result.get("ok"):  # the interpreter's own explanation often went to stderr
                    if "error" in result:  # the child sends the whole text; one line is shown
                        result["error"] = first_line(str(result["error"]))
                    result["stderr"] = done.stderr[-2000:]
                return result
        return {"ok": False, "error": _last_error_line(done.stderr) or f"exit code {done.returncode}"}


def _last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line
    return lines[-1] if lines else ""
