"""A bounded load test of a running ``edgeclf serve``: N concurrent clients × M ``POST /api/classify``.

Loopback only by design (it refuses other hosts). Each client keeps one HTTP/1.1 connection and
sends the same photo M times; the report gives requests/s, latency percentiles, the status codes
seen and the server's resident memory before and after (when its pid is given)::

    edgeclf serve RUN --port 8765 &
    python -m research.serve_load --url http://127.0.0.1:8765 --image photo.jpg --clients 8 --requests 300 \\
        --pid $!
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def rss_kb(pid: int) -> int | None:
    """Resident memory of ``pid`` in kB (Linux), ``None`` elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_load(
    url: str,
    body: bytes,
    clients: int = 8,
    requests: int = 100,
    headers: dict[str, str] | None = None,
    pid: int | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Run the load and return its report (see the module docstring)."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        raise SystemExit(f"{url}: this load test only targets a server on this machine (127.0.0.1)")
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    send = {"Content-Type": "image/jpeg", **(headers or {})}

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        mine, seen = [], Counter()
        for _ in range(requests):
            began = time.perf_counter()
            try:
                conn.request("POST", "/api/classify", body=body, headers=send)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                continue
            mine.append(time.perf_counter() - began)
            seen[response.status] += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            codes.update(seen)

    # One warm-up request so the first-touch costs are not in the memory baseline.
    warm = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    warm.request("POST", "/api/classify", body=body, headers=send)
    warm.getresponse().read()
    warm.close()
    rss_before = rss_kb(pid) if pid else None
    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    rss_after = rss_kb(pid) if pid else None
    ms = np.array(latencies) * 1000.0
    return {
        "clients": clients,
        "requests": clients * requests,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 1) if seconds > 0 else None,
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "max_ms": round(float(ms.max()), 2) if len(ms) else None,
        "codes": {str(k): v for k, v in sorted(codes.items())},
        "connection_failures": failures[:5],
        "rss_kb_before": rss_before,
        "rss_kb_after": rss_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--token")
    parser.add_argument("--pid", type=int, help="the server's pid, to report its memory")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    report = run_load(args.url, args.image.read_bytes(), args.clients, args.requests, headers, args.pid)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
