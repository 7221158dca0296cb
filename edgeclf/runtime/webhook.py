"""POST each label change to a URL from a background thread, with retries and a bounded backlog.

The frame loop only appends to the backlog (never blocks on the network); when the receiver is
down for long the oldest changes are dropped first and counted, so memory stays bounded.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from edgeclf.runtime.errors import ConfigError


class Webhook:
    """Deliver JSON events to ``url`` in order, each tried ``retries + 1`` times with doubling waits."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        backlog: int = 100,
        on_event: Callable[[str], None] = lambda message: None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--webhook {url!r}: expected an http:// or https:// URL")
        self.url, self.retries, self.backoff, self.timeout = url, retries, backoff, timeout
        self._queue: deque[Mapping[str, Any]] = deque(maxlen=backlog)
        self._wake = threading.Condition()
        self._stop = False
        self._on_event = on_event
        self.delivered = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="edgeclf-webhook", daemon=True)
        self._thread.start()

    def send(self, event: Mapping[str, Any]) -> None:
        """Queue one event (returns at once); the oldest queued one is dropped when the backlog is full."""
        with self._wake:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(dict(event))
            self._wake.notify()

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()

    def _deliver(self, event: Mapping[str, Any]) -> None:
        body = json.dumps(event).encode("utf-8")
        for attempt in range(self.retries + 1):
            try:
                self._post(body)
            except (urllib.error.URLError, OSError, ValueError) as error:
                if attempt == self.retries:
                    self.failed += 1
                    self._on_event(f"webhook {self.url}: gave up on one change after {attempt + 1} tries ({error})")
                    return
                time.sleep(self.backoff * 2**attempt)
            else:
                self.delivered += 1
                return

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stop:
                    self._wake.wait()
                if not self._queue:
                    return
                event = self._queue.popleft()
            self._deliver(event)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (waiting at most ``timeout`` s), then stop the thread."""
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout)
