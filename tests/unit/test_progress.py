"""The one progress helper: bar on a terminal, plain lines otherwise, nothing when off."""

from __future__ import annotations

import io

import pytest

from edgeclf.runtime import progress
from edgeclf.runtime.progress import progress_mode, track


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_once_a_step_has_run_long_enough(monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_AFTER_SECONDS", 0.0)
    out = io.StringIO()
    with track("decoding", 25, stream=out) as advance:
        for _ in range(25):
            advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "decoding: 2/25"
    assert lines[-1] == "decoding: 25/25"
    assert len(lines) == 13  # every second image (a tenth of 25, rounded down), then the last one


def test_short_steps_print_nothing_in_plain_mode():
    out = io.StringIO()
    with track("decoding", 3, stream=out) as advance:
        advance(3)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_rich_bar_and_off_gets_nothing():
    pytest.importorskip("rich")
    tty = _Tty()
    with track("calibrating", 4, stream=tty) as advance:
        advance(4)
    assert "calibrating" in tty.getvalue() and "4/4" in tty.getvalue()
    silent = _Tty()
    with progress_mode("off"), track("calibrating", 4, stream=silent) as advance:
        advance(4)
    assert silent.getvalue() == ""


def test_json_mode_forces_plain_lines_even_on_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_AFTER_SECONDS", 0.0)
    tty = _Tty()
    with progress_mode("plain"), track("validating", 10, stream=tty) as advance:
        advance(10)
    assert tty.getvalue() == "validating: 10/10\n"


def test_nested_steps_do_not_draw_a_second_bar(monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_AFTER_SECONDS", 0.0)
    out = io.StringIO()
    with track("outer", 1, stream=out) as outer:
        with track("inner", 5, stream=out) as inner:
            inner(5)
        outer()
    assert "inner" not in out.getvalue() and "outer: 1/1" in out.getvalue()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="auto, bar, plain, off"), progress_mode("fancy"):
        pass
