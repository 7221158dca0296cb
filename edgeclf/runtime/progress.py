"""Progress of long steps, one helper for every stage: a rich bar on a terminal, plain lines otherwise.

>>> with track("decoding", total=len(paths)) as advance:   # doctest: +SKIP
...     for path in paths:
...         decode(path)
...         advance()

Where it goes: stderr, so ``--json`` output on stdout stays clean. How:

* ``bar``: a rich progress bar (rich is imported lazily; a Pi without it gets plain lines);
* ``plain``: ``decoding: 120/400`` lines, one per tenth of the work, only once a step has run for a
  second (short steps print nothing);
* ``off``: nothing.

The mode is ``bar`` when stderr is a terminal, else ``plain``; a command switches it with
:func:`progress_mode` (``--json`` → ``plain``, ``--quiet`` → ``off``). Bars do not nest: a step that
starts while another bar is shown reports nothing of its own.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TextIO

MODES = ("auto", "bar", "plain", "off")
PLAIN_AFTER_SECONDS = 1.0

_mode: ContextVar[str] = ContextVar("edgeclf_progress_mode", default="auto")
_active: ContextVar[bool] = ContextVar("edgeclf_progress_active", default=False)


@contextlib.contextmanager
def progress_mode(mode: str) -> Iterator[None]:
    """Use ``mode`` (auto, bar, plain, off) for every :func:`track` inside the block."""
    if mode not in MODES:
        raise ValueError(f"unknown progress mode {mode!r}; known: {', '.join(MODES)}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def _resolve(stream: TextIO) -> str:
    mode = _mode.get()
    if mode != "auto":
        return mode
    try:
        return "bar" if stream.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"


@contextlib.contextmanager
def track(description: str, total: int, *, stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """Show the progress of a step of ``total`` units; yields ``advance(n=1)``."""
    stream = stream or sys.stderr
    mode = "off" if _active.get() or total <= 0 else _resolve(stream)
    if mode == "bar":
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:
            mode = "plain"
    if mode == "off":
        yield lambda n=1: None
        return
    token = _active.set(True)
    try:
        if mode == "bar":
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=Console(file=stream)) as bar:
                task = bar.add_task(description, total=total)
                yield lambda n=1: bar.advance(task, n)
        else:
            with _plain(description, total, stream) as advance:
                yield advance
    finally:
        _active.reset(token)


@contextlib.contextmanager
def _plain(description: str, total: int, stream: TextIO) -> Iterator[Callable[[int], None]]:
    started = time.perf_counter()
    state = {"done": 0, "shown": 0, "printed": False}
    step = max(1, total // 10)

    def advance(n: int = 1) -> None:
        state["done"] += n
        due = state["done"] - state["shown"] >= step
        if due and time.perf_counter() - started >= PLAIN_AFTER_SECONDS:
            state["shown"], state["printed"] = state["done"], True
            print(f"{description}: {state['done']}/{total}", file=stream, flush=True)

    yield advance
    if state["printed"] and state["shown"] != state["done"]:
        print(f"{description}: {state['done']}/{total}", file=stream, flush=True)
