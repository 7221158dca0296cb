"""systemd's readiness and watchdog notifications (``Type=notify``, ``WatchdogSec=``), standard library only.

The protocol (``man sd_notify``): send ``READY=1`` / ``WATCHDOG=1`` / ``STATUS=…`` as one datagram
to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``; a name starting with ``@`` is an abstract
socket (the ``@`` stands for a leading NUL byte). ``$WATCHDOG_USEC`` is the watchdog interval; a
service pings at least every half of it, and only when ``$WATCHDOG_PID`` (if set) is its own pid.
Without ``$NOTIFY_SOCKET`` (not started by systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping


class Notifier:
    """Sends notifications to systemd; a no-op when the process was not started with ``Type=notify``."""

    def __init__(self, environ: Mapping[str, str] | None = None, clock=time.monotonic) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + raw[1:] if raw.startswith("@") else raw
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._clock = clock
        self._last_ping: float | None = None
        self._ready = False
        self._lock = threading.Lock()
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """True when ``$NOTIFY_SOCKET`` names a socket."""
        return bool(self.address)

    def notify(self, message: str) -> bool:
        """Send one ``KEY=value`` datagram; ``False`` when disabled or the socket is gone (never raises)."""
        if not self.enabled:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Non-blocking: a datagram socket whose reader lags blocks the sender when its queue is
                # full, and the frame loop must never wait on systemd.
                sock.setblocking(False)
                sock.sendto(message.encode("utf-8"), self.address)
        except OSError:  # gone, not ours, or its queue is full: the service keeps running
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (and a status line): systemd considers the service started."""
        self._ready = True
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        """A free-form status line shown by ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        """``STOPPING=1``: the service is shutting down on purpose."""
        return self.notify("STOPPING=1")

    def ping(self) -> bool:
        """``WATCHDOG=1``, at most once per half watchdog interval (cheap to call every frame).

        Nothing is sent before :meth:`ready`: the frame loop may start before the service listens.
        """
        if self.watchdog_interval is None or not self._ready:
            return False
        now = self._clock()
        with self._lock:
            if self._last_ping is not None and now - self._last_ping < self.watchdog_interval / 2:
                return False
            self._last_ping = now
        return self.notify("WATCHDOG=1")
