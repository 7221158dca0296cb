"""``edgeclf serve``: one loaded model behind a small web service (Starlette on uvicorn).

- :mod:`edgeclf.serve.service` — the shared state: the model behind a lock, the camera thread,
  the latest frame and result, label changes, counters and health;
- :mod:`edgeclf.serve.app` — the HTTP routes, token check, body limits and timeouts;
- :mod:`edgeclf.serve.page` — the self-contained live / upload page;
- :mod:`edgeclf.serve.metrics` — Prometheus' text format.

Imported only by the ``serve`` command (the ``serve`` extra); never imports TensorFlow.
"""
