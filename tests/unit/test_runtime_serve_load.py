"""A bounded load on a real ``edgeclf serve`` (loopback): 8 clients at once, no 5xx, memory flat.

Speed is reported in docs/benchmarks.md (``python -m research.serve_load``), never asserted here.
"""

from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("typer", reason="the command line needs typer")

from helpers.research import research_script
from helpers.serve import ServeProcess

from edgeclf.runtime.manifest import Manifest

run_load = research_script("serve_load").run_load
TOKEN = "load-token"


def test_eight_concurrent_clients_get_only_200s_and_memory_stays_flat(serve_run):
    photo = sorted((Path(Manifest.load(serve_run).data["root"]) / "test").rglob("*.jpg"))[0]
    with ServeProcess(serve_run, "--token", TOKEN, "--threads", "1") as server:
        first = run_load(
            server.url, photo.read_bytes(), 8, 40, {"Authorization": f"Bearer {TOKEN}"}, server.process.pid
        )
        second = run_load(
            server.url, photo.read_bytes(), 8, 40, {"Authorization": f"Bearer {TOKEN}"}, server.process.pid
        )
        status, health = server.json("/healthz")
    for report in (first, second):
        assert report["codes"] == {"200": 320} and report["connection_failures"] == []
    # Memory: a second round of 320 requests must not grow the server like the first did on warm-up.
    growth_kb = second["rss_kb_after"] - first["rss_kb_after"]
    assert growth_kb < 8 * 1024, (first, second)
    assert status == 200 and health["errors"] == 0
