"""Where the trainer's progress lines go."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunLog:
    """Collects progress lines and prints them (stdout) unless ``verbose`` is 0."""

    verbose: int = 1
    lines: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.lines.append(message)
        if self.verbose:
            print(message, flush=True)
