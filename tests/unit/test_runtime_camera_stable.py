"""``edgeclf camera --hold K --on-change``: only label changes are printed, and systemd hears from the loop."""

import contextlib
import json
import socket
import threading
import time
import uuid

import pytest

pytest.importorskip("cv2", reason="OpenCV (the camera extra) writes and reads the test video")
pytest.importorskip("typer", reason="the command line needs typer")

from helpers.serve import two_labelled_frames, write_video
from typer.testing import CliRunner

from edgeclf.cli import app


def test_on_change_prints_only_changes_and_the_loop_pings_the_watchdog(serve_run, tmp_path, monkeypatch):
    (label_a, frame_a), (label_b, frame_b) = two_labelled_frames(serve_run)
    # a (frames 1-6), a one-frame flicker to b (7), a (8-10), b (11-16), a (17-22): --hold 3 ignores the flicker
    frames = [frame_a] * 6 + [frame_b] + [frame_a] * 3 + [frame_b] * 6 + [frame_a] * 6
    video = write_video(tmp_path / "scene.avi", frames)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"edgeclf-camera-test-{uuid.uuid4().hex}"
    sock.bind("\0" + name)
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.setenv("WATCHDOG_USEC", "2")  # every frame may ping
    messages = []
    done = threading.Event()

    def listen():  # systemd reads as messages come (the kernel queues only a few datagrams)
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                messages.append(sock.recv(256).decode())

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        result = CliRunner().invoke(
            app, ["camera", str(serve_run), "--source", str(video), "--hold", "3", "--on-change", "--threads", "1"]
        )
        time.sleep(0.3)
    finally:
        done.set()
        listener.join()
        sock.close()
    assert result.exit_code == 0, result.output
    changes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(c["previous"], c["label"]) for c in changes] == [(None, label_a), (label_a, label_b), (label_b, label_a)]
    assert [c["frame"] for c in changes] == [3, 13, 19]  # each label's third frame in a row
    assert messages[0] == "READY=1" and messages.count("WATCHDOG=1") >= 10 and messages[-1] == "STOPPING=1"
