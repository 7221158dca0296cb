"""The camera loop's parts: the source supervisor (open, read, back off; fake clock and sleep), the
per-frame step, and the open-set decision taken after smoothing (``--threshold auto --smooth``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgeclf.runtime.camera import CameraOptions, FrameRate, FrameSource, SourceSupervisor
from edgeclf.runtime.errors import CameraError

FRAME = np.zeros((4, 4, 3), np.uint8)


class ScriptedSource(FrameSource):
    """Opens or not (``opens``), then delivers ``frames`` frames and then ``None``."""

    color_order = "BGR"

    def __init__(self, opens: bool = True, frames: int = 0, finite: bool = False) -> None:
        self.name, self.opens, self.left, self.finite = "cam", opens, frames, finite
        self.closed = False

    def open(self) -> None:
        if not self.opens:
            raise CameraError("cam: unplugged")

    def read(self):
        if self.left == 0:
            return None
        self.left -= 1
        return FRAME

    def close(self) -> None:
        self.closed = True


class FakeTime:
    """A clock that only moves when the supervisor sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _supervisor(sources, **options):
    fake, events, made = FakeTime(), [], []
    queue = list(sources)

    def make():
        made.append(queue.pop(0))
        return made[-1]

    supervisor = SourceSupervisor(make, CameraOptions(**options), events.append, fake.clock, fake.sleep)
    return supervisor, fake, events, made


def test_a_lost_source_is_reopened_with_doubling_backoff_and_given_up_after_the_retries():
    sources = [ScriptedSource(frames=2), ScriptedSource(opens=False), ScriptedSource(frames=1)]
    sources += [ScriptedSource(opens=False) for _ in range(4)]
    supervisor, fake, events, made = _supervisor(sources, retries=3, backoff=0.5, max_backoff=1.5)
    frames = list(supervisor.frames())
    assert len(frames) == 3 and all(order == "BGR" for _, order in frames)
    # lost after 2 frames: 0.5 s; the reopen fails: 1.0 s; 1 frame resets the count, then 0.5, 1.0, 1.5 (capped)
    assert fake.slept == [0.5, 1.0, 0.5, 1.0, 1.5]
    assert supervisor.reconnects == 5 and supervisor.stopped == "source failed"
    assert supervisor.error == "cam: unplugged; gave up after 3 reconnection attempts"
    assert events[0] == "cam: stopped delivering frames; reconnecting in 0.5 s (attempt 1/3)"
    assert events[1] == "cam: unplugged; reconnecting in 1.0 s (attempt 2/3)"
    assert events[-1] == supervisor.error
    assert made[0].closed and made[2].closed  # a lost source is released before the next one opens


def test_a_source_that_never_opens_raises_at_once():
    supervisor, fake, events, _ = _supervisor([ScriptedSource(opens=False)])
    with pytest.raises(CameraError, match="cam: unplugged"):
        next(supervisor.frames())
    assert fake.slept == [] and events == []


def test_the_end_of_a_video_file_stops_without_reconnecting():
    supervisor, fake, _, _ = _supervisor([ScriptedSource(frames=3, finite=True)])
    assert len(list(supervisor.frames())) == 3
    assert supervisor.stopped == "end of stream" and supervisor.reconnects == 0 and fake.slept == []


def test_the_backoff_never_sleeps_past_the_deadline():
    sources = [ScriptedSource(frames=1)] + [ScriptedSource(opens=False) for _ in range(5)]
    supervisor, fake, _, _ = _supervisor(sources, retries=5, backoff=4.0, max_backoff=8.0)
    assert len(list(supervisor.frames(deadline=fake.now + 6.0))) == 1
    assert fake.slept == [4.0, 2.0] and supervisor.stopped == "duration"


def test_frame_rate_counts_frames_over_the_window():
    rate = FrameRate(window=3)
    assert rate.tick(0.0) == 0.0
    assert rate.tick(0.5) == 2.0
    assert rate.tick(1.0) == 2.0
    assert rate.tick(1.25) == pytest.approx(2 / 0.75)  # the first frame left the window


def test_camera_with_threshold_auto_decides_unknown_after_smoothing(tmp_path, monkeypatch):
    """Frames alternate between sure 'cars' and sure 'elephants': each alone passes the open-set
    threshold, their two-frame average (0.5 / 0.5) does not, so the smoothed label is unknown."""
    pytest.importorskip("cv2", reason="OpenCV (the camera extra) writes and reads the test video")
    pytest.importorskip("typer", reason="the command line needs typer")
    from helpers.fake_backend import make_fake_run
    from helpers.serve import write_video
    from typer.testing import CliRunner

    from edgeclf.cli import app
    from edgeclf.runtime.manifest import Manifest, OpenSet

    run = make_fake_run(tmp_path / "run", monkeypatch)  # its score is the frame's mean red level
    manifest = Manifest.load(run)
    dataclasses.replace(manifest, open_set=OpenSet(temperature=1.0, threshold=0.8)).save(run)
    red, black = np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    video = write_video(tmp_path / "flip.avi", [red, black] * 3)

    def labels(*extra):
        result = CliRunner().invoke(app, ["camera", str(run), "--source", str(video), "--json", *extra])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        return [row["label"] for row in rows if not row.get("summary")]

    assert labels("--threshold", "auto") == ["elephants", "cars"] * 3  # every frame alone is sure
    assert labels("--threshold", "auto", "--smooth", "2") == ["elephants"] + ["unknown"] * 5
