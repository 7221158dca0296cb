"""--webhook: each change POSTed to a local loopback receiver, retried when it fails, backlog bounded."""

import http.server
import json
import threading
import time

import pytest

from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.webhook import Webhook


class Receiver:
    """A loopback HTTP server that fails the first ``failures`` POSTs with 503, then records bodies."""

    def __init__(self, failures=0, delay=0.0):
        self.bodies, self.attempts = [], 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                time.sleep(delay)
                if outer.attempts <= failures:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_changes_arrive_in_order_after_retries(receiver):
    target = receiver(failures=2)
    hook = Webhook(target.url, retries=3, backoff=0.01)
    for i in range(3):
        hook.send({"label": f"l{i}"})
    hook.close()
    assert [b["label"] for b in target.bodies] == ["l0", "l1", "l2"]
    assert target.attempts == 5 and hook.delivered == 3 and hook.failed == 0


def test_a_receiver_that_stays_down_costs_one_line_per_change(receiver):
    target = receiver(failures=100)
    events = []
    hook = Webhook(target.url, retries=1, backoff=0.01, on_event=events.append)
    hook.send({"label": "x"})
    hook.close()
    assert hook.failed == 1 and hook.delivered == 0 and target.attempts == 2
    assert len(events) == 1 and "gave up" in events[0]


def test_the_backlog_is_bounded_and_drops_the_oldest(receiver):
    target = receiver(delay=0.2)
    hook = Webhook(target.url, backlog=3, backoff=0.01)
    for i in range(10):  # much faster than the receiver
        hook.send({"n": i})
    hook.close(timeout=10)
    received = [b["n"] for b in target.bodies]
    assert hook.dropped >= 5
    assert received[-3:] == [7, 8, 9]  # the newest survive
    assert len(received) == 10 - hook.dropped


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "not a url"])
def test_only_http_urls_are_accepted(url):
    with pytest.raises(EdgeclfError, match="http"):
        Webhook(url)
