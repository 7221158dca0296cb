"""The HTTP routes of ``edgeclf serve`` (Starlette).

Security: every route but ``/healthz`` needs the token when one is set (``Authorization: Bearer``,
``X-Token`` or ``?token=``) → 401; a body larger than the limit → 413 (from ``Content-Length`` before
reading, or while reading a chunked body); a body not complete within the read timeout → 408; a
body that is not an image → 400 with the same one-line reason as ``edgeclf classify``. No route
takes a path: the only image a request can classify is the one it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from edgeclf.commands.runtime import classify_record
from edgeclf.runtime.errors import ImageDecodeError, InputShapeError
from edgeclf.serve.page import render_page
from edgeclf.serve.service import Service

Handler = Callable[[Request], Awaitable[Response]]


class HTTPProblem(Exception):
    """A request refused with a status code and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-token") or request.query_params.get("token")


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes (413) or a sender slower than ``timeout`` s (408)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPProblem(400, "bad Content-Length header")
        if int(declared) > limit:
            raise HTTPProblem(413, f"request body of {int(declared)} bytes is above the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0

    async def consume() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPProblem(413, f"request body is above the {limit}-byte limit")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(consume(), timeout)
    except asyncio.TimeoutError:
        raise HTTPProblem(408, f"request body not received within {timeout:g} s") from None
    except OSError as error:  # the client went away mid-body
        raise HTTPProblem(400, f"request body incomplete ({error})") from None
    return b"".join(chunks)


async def _image_from(request: Request, body: bytes) -> tuple[bytes, str]:
    """The image bytes and a name for messages: a multipart form's first file, else the raw body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return body, "upload"

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=20)
    except Exception as error:  # python-multipart's errors for a malformed form
        raise HTTPProblem(400, f"malformed multipart form ({error})") from None
    for value in form.values():
        if hasattr(value, "read"):
            # The file name is only used in messages: nothing is ever read from the device by name.
            return await value.read(), str(getattr(value, "filename", None) or "upload")
    raise HTTPProblem(400, "the form holds no file; send the image as a file field or as the raw request body")


def create_app(service: Service, on_fatal: Callable[[], None] = lambda: None) -> Starlette:
    """The Starlette application of one service."""
    options = service.options

    def guarded(route: str, handler: Handler, *, public: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                if options.token and not public:
                    given = _token_of(request) or ""
                    if not hmac.compare_digest(given.encode(), options.token.encode()):
                        raise HTTPProblem(401, "missing or wrong token (Authorization: Bearer …, X-Token or ?token=)")
                response = await handler(request)
            except HTTPProblem as problem:
                response = _error(problem.status, problem.reason)
            service.requests[(route, response.status_code)] += 1
            return response

        return endpoint

    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(service))

    async def classify(request: Request) -> Response:
        body = await read_body(request, options.max_body, options.read_timeout)
        data, name = await _image_from(request, body)
        if service.pending >= options.max_pending:
            raise HTTPProblem(503, f"busy: {service.pending} images are waiting for the model; retry shortly")
        service.pending += 1
        try:
            began = time.perf_counter()
            predictions = await run_in_threadpool(service.shared.classify, data)
            ms = (time.perf_counter() - began) * 1000.0
        except (ImageDecodeError, InputShapeError) as error:
            service.errors += 1
            reason = error.reason if isinstance(error, ImageDecodeError) else str(error)
            raise HTTPProblem(400, f"{name}: {reason}") from None
        finally:
            service.pending -= 1
        service.record_classification(predictions, ms, name)
        return JSONResponse(classify_record(name, predictions, ms))

    async def latest(request: Request) -> Response:
        return JSONResponse({"latest": service.latest, "changes": list(service.changes)})

    async def frame(request: Request) -> Response:
        jpeg = service.latest_jpeg
        if jpeg is None:
            raise HTTPProblem(404, "no frame yet" if options.source else "no camera source (--source) configured")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        queue = service.subscribe()
        if queue is None:
            raise HTTPProblem(503, f"too many event-stream clients (at most {options.max_streams})")

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                replayed = list(service.changes)  # the recent changes first, each once
                for change in replayed:
                    yield f"event: label-change\ndata: {json.dumps(change)}\n\n"
                while True:
                    try:
                        change = await asyncio.wait_for(queue.get(), 15.0)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"  # lets proxies and the client see the stream is alive
                        continue
                    if not any(change is seen for seen in replayed):
                        yield f"event: label-change\ndata: {json.dumps(change)}\n\n"
            finally:
                service.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def healthz(request: Request) -> Response:
        return JSONResponse(service.health())

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(service.metrics(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        service.start(loop, lambda: loop.call_soon_threadsafe(on_fatal))
        heartbeat = None
        if options.source is None:  # no frame loop to ping the watchdog: the event loop does
            heartbeat = asyncio.create_task(_heartbeat(service))
        try:
            yield
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            await run_in_threadpool(service.stop)

    routes = [
        Route("/", guarded("/", page), methods=["GET"]),
        Route("/api/classify", guarded("/api/classify", classify), methods=["POST"]),
        Route("/api/latest", guarded("/api/latest", latest), methods=["GET"]),
        Route("/api/frame.jpg", guarded("/api/frame.jpg", frame), methods=["GET"]),
        Route("/api/events", guarded("/api/events", events), methods=["GET"]),
        Route("/healthz", guarded("/healthz", healthz, public=True), methods=["GET"]),
        Route("/metrics", guarded("/metrics", metrics), methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _heartbeat(service: Service) -> None:
    while True:
        service.notifier.ping()
        await asyncio.sleep(1.0)
