"""``edgeclf serve``: a real server process on a loopback port, real HTTP clients, the real fixture models.

Every endpoint, the token, and bad requests (not an image, a truncated image, a 50 MB body, a
chunked body over the limit, a slow sender, a body cut short): each gets a clean 4xx and the server
answers normally afterwards.
"""

import json
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("typer", reason="the command line needs typer")

from helpers.images import pattern_array, write_jpeg
from helpers.serve import ServeProcess

from edgeclf.runtime.manifest import Manifest

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1024 * 1024  # --max-upload-mb 1


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A fake sysfs tree: a Pi's CPU zone at 48.5 °C, 1.5 GHz, under-voltage has occurred (bit 16)."""
    root = tmp_path_factory.mktemp("sysfs")
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48500\n")
    freq = root / "sys/devices/system/cpu/cpu0/cpufreq"
    freq.mkdir(parents=True)
    (freq / "scaling_cur_freq").write_text("1500000\n")
    fw = root / "sys/devices/platform/soc/soc:firmware"
    fw.mkdir(parents=True)
    (fw / "get_throttled").write_text("10000\n")
    return root


@pytest.fixture(scope="module")
def server(fixture_run, board):
    args = ["--token", TOKEN, "--max-upload-mb", "1", "--request-timeout", "2", "--threads", "1"]
    with ServeProcess(fixture_run, *args, "--board-root", str(board)) as proc:
        yield proc


@pytest.fixture(scope="module")
def photo(fixture_run):
    return sorted((Path(Manifest.load(fixture_run).data["root"]) / "test").rglob("*.jpg"))[0]


def _still_answering(server):
    status, health = server.json("/healthz")
    assert status == 200 and health["status"] == "ok"


def test_healthz_reports_model_backend_threads_and_board_health_without_a_token(server, fixture_run):
    status, health = server.json("/healthz")
    assert status == 200
    manifest = Manifest.load(fixture_run)
    assert health["labels"] == list(manifest.labels)
    assert health["format"] in {a.format for a in manifest.artifacts}
    assert health["backend"] in ("litert", "tflite-runtime", "onnxruntime")
    assert health["threads"] == 1
    assert health["uptime_s"] >= 0
    assert health["self_check"]["ok"] is True and health["self_check"]["probes"] >= 1
    assert health["board"]["cpu_temperature_c"] == 48.5
    assert health["board"]["cpu_frequency_mhz"] == 1500.0
    assert health["board"]["throttle_flags"] == ["under-voltage-occurred"]


@pytest.mark.parametrize("path", ["/", "/api/latest", "/api/frame.jpg", "/api/events", "/metrics"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-Token": "wrong"}])
def test_every_endpoint_but_healthz_needs_the_token(server, path, headers):
    status, body, _ = server.request(path, headers=headers)
    assert status == 401
    assert "token" in json.loads(body)["error"]


def test_classify_without_the_token_is_refused_before_reading_the_image(server, photo):
    status, _body, _ = server.request("/api/classify", data=photo.read_bytes())
    assert status == 401
    _still_answering(server)


def test_classify_answers_the_same_json_as_classify_json(server, fixture_run, photo):
    from typer.testing import CliRunner

    from edgeclf.cli import app

    result = CliRunner().invoke(
        app, ["classify", str(fixture_run), str(photo), "--json", "--top-k", "2", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    expected = json.loads(result.stdout.splitlines()[0])
    # the server's --top-k is 1; ask the CLI for 2 and compare the shared first one and the shape
    status, answer = server.json("/api/classify", data=photo.read_bytes(), headers=AUTH)
    assert status == 200
    assert set(answer) == set(expected) == {"file", "label", "score", "predictions", "ms"}
    assert answer["file"] == "upload"
    assert answer["label"] == expected["label"]
    assert answer["score"] == expected["score"]
    assert answer["predictions"] == expected["predictions"][:1]


def test_classify_takes_a_multipart_upload_and_a_query_token(server, photo):
    boundary = "edgeclf-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{photo.name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, answer = server.json(f"/api/classify?token={TOKEN}", data=body, headers=headers)
    assert status == 200
    assert answer["file"] == photo.name
    raw_status, raw = server.json("/api/classify", data=photo.read_bytes(), headers=AUTH)
    assert (raw_status, raw["label"], raw["score"]) == (200, answer["label"], answer["score"])
    status, latest = server.json("/api/latest", headers=AUTH)
    assert status == 200 and latest["latest"]["label"] == answer["label"]


def test_not_an_image_is_400_with_the_one_line_reason_classify_gives(server, fixture_run, tmp_path):
    from typer.testing import CliRunner

    from edgeclf.cli import app

    text = tmp_path / "notes.txt"
    text.write_bytes(b"this is not an image\n")
    cli = CliRunner().invoke(app, ["classify", str(fixture_run), str(text)])
    cli_reason = cli.stderr.splitlines()[0].removeprefix(f"error: {text}: ")
    status, answer = server.json("/api/classify", data=text.read_bytes(), headers=AUTH)
    assert status == 400
    assert answer == {"error": f"upload: {cli_reason}"}
    assert "not an image" in cli_reason
    _still_answering(server)


def test_a_truncated_or_empty_image_is_400(server, tmp_path):
    jpeg = write_jpeg(tmp_path / "photo.jpg", pattern_array(200, 150)).read_bytes()
    status, answer = server.json("/api/classify", data=jpeg[: len(jpeg) // 2], headers=AUTH)
    assert status == 400 and "truncated" in answer["error"]
    status, answer = server.json("/api/classify", data=b"", headers=AUTH)
    assert status == 400 and "empty" in answer["error"]
    _still_answering(server)


def test_a_request_cannot_make_the_server_read_a_file_on_the_device(server):
    boundary = "b"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="/etc/passwd"\r\n\r\n'
        f"not an image\r\n--{boundary}--\r\n"
    ).encode()
    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, answer = server.json("/api/classify?path=/etc/passwd&file=/dev/video0", data=body, headers=headers)
    assert status == 400
    assert "not an image" in answer["error"]  # it looked at the bytes sent, nothing else
    assert "root:" not in json.dumps(answer)


def _raw_exchange(server, head: bytes, body_chunks, pause: float = 0.0, read_timeout: float = 15.0) -> bytes:
    """Send ``head`` and body chunks on a raw socket, then read whatever the server answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending: read the answer
        reply = b""
        try:
            while b"\r\n\r\n" not in reply:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        except (ConnectionResetError, TimeoutError):
            pass
    return reply


def _head(server, length: int | None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (
        f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: image/jpeg\r\n{size}{extra}\r\n"
    ).encode()


def test_a_50_mb_body_is_413_and_the_server_goes_on(server):
    size = 50 * 1024 * 1024
    reply = _raw_exchange(server, _head(server, size), (b"\0" * 65536 for _ in range(size // 65536)))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    _still_answering(server)


def test_a_chunked_body_over_the_limit_is_413(server):
    chunk = b"\0" * 65536
    chunks = [b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(LIMIT // len(chunk) + 4)] + [b"0\r\n\r\n"]
    reply = _raw_exchange(server, _head(server, None), chunks)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    _still_answering(server)


def test_a_slow_sender_gets_408_while_others_are_served(server, photo):
    import threading

    replies = []
    slow = threading.Thread(
        target=lambda: replies.append(_raw_exchange(server, _head(server, 5000), [b"\xff\xd8" + b"\0" * 10]))
    )
    slow.start()
    time.sleep(0.5)
    status, answer = server.json("/api/classify", data=photo.read_bytes(), headers=AUTH)  # not blocked by it
    assert status == 200 and answer["label"]
    slow.join(30)
    assert replies and replies[0].startswith(b"HTTP/1.1 408"), replies
    _still_answering(server)


def test_a_body_cut_short_leaves_the_server_answering(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head(server, 100_000) + b"\xff\xd8\xff" + b"\0" * 1000)
    _still_answering(server)


def test_metrics_are_prometheus_text_with_counters_and_a_latency_histogram(server, photo):
    server.request("/api/classify", data=photo.read_bytes(), headers=AUTH)
    server.request("/api/classify", data=b"junk", headers=AUTH)
    status, body, headers = server.request("/metrics", headers=AUTH)
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert "# TYPE edgeclf_inference_seconds histogram" in text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples["edgeclf_inference_seconds_count"]) >= 1
    assert float(samples['edgeclf_inference_seconds_bucket{le="+Inf"}']) == float(
        samples["edgeclf_inference_seconds_count"]
    )
    assert float(samples['edgeclf_requests_total{route="/api/classify",code="200"}']) >= 1
    assert float(samples['edgeclf_requests_total{route="/api/classify",code="400"}']) >= 1
    assert float(samples["edgeclf_errors_total"]) >= 1
    assert float(samples["edgeclf_cpu_temperature_celsius"]) == 48.5


def test_the_upload_page_is_self_contained(server):
    status, body, _ = server.request(f"/?token={TOKEN}")
    page = body.decode()
    assert status == 200
    assert 'type="file"' in page
    assert "http://" not in page and "https://" not in page  # no CDN: works on an offline Pi


def test_a_public_address_without_token_prints_a_warning(fixture_run):
    # 0.0.0.0 is only *named* here: --skip-verify and a bad --port make it stop before binding anything.
    from typer.testing import CliRunner

    from edgeclf.cli import app

    result = CliRunner().invoke(app, ["serve", str(fixture_run), "--host", "0.0.0.0", "--port", "99999"])
    assert result.exit_code == 2  # usage error: port out of range, nothing started
    result = CliRunner().invoke(app, ["serve", str(fixture_run), "--host", "203.0.113.1", "--skip-verify"])
    assert "warning: listening on 203.0.113.1 without --token" in result.stderr
    assert result.exit_code == 1 and "could not listen" in result.stderr
