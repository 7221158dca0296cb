"""systemd notifications over a real AF_UNIX datagram socket standing in for systemd's."""

import os
import socket
import uuid

import pytest

from edgeclf.runtime.notify import Notifier


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
        name = address
    else:
        tag = f"edgeclf-test-{uuid.uuid4().hex}"
        sock.bind("\0" + tag)
        name = "@" + tag  # how systemd writes an abstract socket in $NOTIFY_SOCKET
    sock.settimeout(2)
    yield name, sock
    sock.close()


def test_ready_status_and_stopping_reach_the_socket(notify_socket):
    name, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": name})
    assert notifier.ready("serving on port 8000")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving on port 8000"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_watchdog_pings_at_most_every_half_interval(notify_socket):
    name, sock = notify_socket
    now = [100.0]
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000"}, clock=lambda: now[0])
    assert notifier.watchdog_interval == 2.0
    assert not notifier.ping()  # not before READY=1
    notifier.ready()
    assert sock.recv(64) == b"READY=1"
    sent = []
    for step in range(40):  # 40 frames over 4 s
        now[0] = 100.0 + step * 0.1
        sent.append(notifier.ping())
    assert sum(sent) == 4  # t = 0, 1, 2, 3 s
    assert [sock.recv(64) for _ in range(4)] == [b"WATCHDOG=1"] * 4


def test_watchdog_for_another_pid_is_ignored(notify_socket):
    name, _ = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.watchdog_interval is None and not notifier.ping()


def test_without_systemd_nothing_is_sent_and_nothing_fails(tmp_path):
    assert not Notifier({}).ready()
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "no-such-socket"), "WATCHDOG_USEC": "1000000"})
    assert gone.enabled and not gone.ready() and not gone.ping() and gone.sent == 0


def test_a_systemd_that_does_not_read_never_blocks_the_sender(notify_socket):
    name, _sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": name})
    results = [notifier.status(f"frame {i}") for i in range(5000)]  # nobody reads: the queue fills up
    assert results[0] and not all(results)  # sent while there was room, then refused at once
