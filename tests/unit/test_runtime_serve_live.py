"""``edgeclf serve --source VIDEO``: the frame loop behind a real server, its label changes and its watchdog.

The video alternates between two photos the model labels differently (the model decides which),
so label changes must reach the event stream, ``--on-change``'s stdout and systemd's socket (a real
datagram socket standing in for it).
"""

import contextlib
import http.client
import io
import json
import socket
import uuid

import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("typer", reason="the command line needs typer")
pytest.importorskip("cv2", reason="OpenCV (the camera extra) writes and reads the test video")

import itertools

from helpers.serve import ServeProcess, two_labelled_frames, wait_for, write_video
from PIL import Image

TOKEN = "live-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def scene(serve_run, tmp_path_factory):
    (label_a, frame_a), (label_b, frame_b) = two_labelled_frames(serve_run)
    frames = ([frame_a] * 30 + [frame_b] * 30) * 2  # 1.5 s each at --max-fps 20
    video = write_video(tmp_path_factory.mktemp("video") / "scene.avi", frames, fps=20)
    return video, label_a, label_b


@pytest.fixture(scope="module")
def systemd():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"edgeclf-serve-test-{uuid.uuid4().hex}"
    sock.bind("\0" + name)
    sock.settimeout(0.2)
    yield "@" + name, sock
    sock.close()


@pytest.fixture(scope="module")
def live(serve_run, scene, systemd):
    video, _, _ = scene
    args = ["--source", str(video), "--loop", "--max-fps", "20", "--hold", "3", "--on-change", "--threads", "1"]
    env = {"NOTIFY_SOCKET": systemd[0], "WATCHDOG_USEC": "400000"}
    with ServeProcess(serve_run, *args, "--token", TOKEN, env=env) as proc:
        yield proc


def test_the_latest_frame_and_result_are_served(live):
    assert wait_for(lambda: live.request("/api/frame.jpg", headers=AUTH)[0] == 200)
    status, body, headers = live.request("/api/frame.jpg", headers=AUTH)
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).size == (320, 240)
    latest = wait_for(lambda: (live.json("/api/latest", headers=AUTH)[1]["latest"] or {}).get("fps"))
    assert latest
    status, health = live.json("/healthz")
    assert health["camera_running"] and health["frames"] > 0 and health["fps"] > 0


def _events(live, count, timeout=20.0):
    """Read ``count`` label-change events from the event stream."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=timeout)
    conn.request("GET", "/api/events", headers=AUTH)
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    events = []
    while len(events) < count:
        line = response.fp.readline().decode()
        assert line, "the event stream closed"
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    conn.close()
    return events


def test_label_changes_reach_the_event_stream_and_on_change_stdout(live, scene):
    _, label_a, label_b = scene
    events = _events(live, 3)  # the stream replays recent changes, then follows new ones
    assert {e["label"] for e in events} == {label_a, label_b}
    assert all(e["event"] == "label-change" for e in events)
    for before, after in itertools.pairwise(events):
        assert after["previous"] == before["label"] != after["label"]
    printed = [json.loads(line) for line in live.stdout if line.startswith("{")]
    assert len(printed) >= 2 and {p["label"] for p in printed} == {label_a, label_b}


def test_readiness_then_watchdog_pings_from_the_frame_loop(live, systemd):
    _, sock = systemd
    messages = []

    def collect():
        with contextlib.suppress(TimeoutError):
            messages.append(sock.recv(256).decode())
        return sum(m == "WATCHDOG=1" for m in messages) >= 3

    assert wait_for(collect, timeout=15)
    ready = [m for m in messages if m.startswith("READY=1")]
    assert ready and messages.index(ready[0]) < messages.index("WATCHDOG=1")
    _status, body, _ = live.request("/metrics", headers=AUTH)
    samples = dict(line.rsplit(" ", 1) for line in body.decode().splitlines() if line and not line.startswith("#"))
    assert float(samples["edgeclf_frames_total"]) > 0
