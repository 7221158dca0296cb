"""``edgeclf serve`` (a web service around one model) and ``edgeclf verify`` (the model's self-check).

Neither imports TensorFlow. ``serve`` needs the ``serve`` extra (Starlette, uvicorn), imported
when the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeclf.commands.runtime import (
    BackendOpt,
    FormatOpt,
    HoldOpt,
    JsonOpt,
    ModelArg,
    OnChangeOpt,
    SmoothOpt,
    ThreadsOpt,
    ThresholdOpt,
    TopKOpt,
    WebhookOpt,
    classifier_options,
    describe_classifier,
)
from edgeclf.runtime.errors import EdgeclfError, SelfCheckError, missing_extra

if TYPE_CHECKING:  # pragma: no cover
    from edgeclf.runtime.classifier import Classifier
    from edgeclf.runtime.notify import Notifier
    from edgeclf.serve.service import Service

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def verify(
    model: ModelArg,
    format_name: FormatOpt = None,
    backend: BackendOpt = None,
    threads: ThreadsOpt = None,
    tolerance: Annotated[
        float | None,
        typer.Option("--tolerance", min=0.0, help="Allowed |difference| of float outputs (default: the exporter's)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Re-run the probe images recorded at export with the installed interpreter; exit 1 if outputs changed.

    int8 outputs must be identical, float outputs within the tolerance. Run it after an upgrade, or
    before the service starts (systemd ``ExecStartPre=``).
    """
    from edgeclf.runtime.probes import verify_model

    report = verify_model(model, classifier_options(format_name, backend, threads, 1, "0"), tolerance)
    if json_output:
        typer.echo(json.dumps(report.to_dict()))
    if not report.ok:
        raise SelfCheckError(report.line())
    if not json_output:
        typer.echo(report.line())


SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="picamera2, a camera index (0), a video file or an rtsp:// / http:// URL; omitted: an upload page.",
    ),
]
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")]
PortOpt = Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free one).")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="EDGECLF_TOKEN", help="Require this token on every endpoint but /healthz."),
]
MaxUploadMbOpt = Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload (413 above).")]
RequestTimeoutOpt = Annotated[
    float, typer.Option("--request-timeout", min=0.1, help="Seconds a client gets to send its upload (408 after).")
]
MaxFpsOpt = Annotated[float | None, typer.Option("--max-fps", min=0.1, help="Read at most this many frames/s.")]
LoopOpt = Annotated[bool, typer.Option("--loop", help="Play a video file --source again at its end.")]
SkipVerifyOpt = Annotated[bool, typer.Option("--skip-verify", help="Do not run the self-check at start.")]
RetriesOpt = Annotated[int, typer.Option("--retries", min=0, help="Camera reconnection attempts in a row.")]
BoardRootOpt = Annotated[Path, typer.Option("--board-root", hidden=True, help="Root of sysfs (tests).")]


def serve(
    model: ModelArg,
    source: SourceOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    token: TokenOpt = None,
    max_upload_mb: MaxUploadMbOpt = 8.0,
    request_timeout: RequestTimeoutOpt = 10.0,
    smooth: SmoothOpt = 1,
    hold: HoldOpt = 1,
    on_change: OnChangeOpt = False,
    webhook: WebhookOpt = None,
    max_fps: MaxFpsOpt = None,
    loop: LoopOpt = False,
    skip_verify: SkipVerifyOpt = False,
    retries: RetriesOpt = 5,
    board_root: BoardRootOpt = Path("/"),
    format_name: FormatOpt = None,
    backend: BackendOpt = None,
    threads: ThreadsOpt = None,
    top_k: TopKOpt = 1,
    threshold: ThresholdOpt = "0",
) -> None:
    """Serve the model over HTTP: a live page, /api/classify, /api/latest, /api/events, /healthz, /metrics.

    Listens on 127.0.0.1 unless --host says otherwise. The model is checked with `edgeclf verify`
    first. Under systemd (Type=notify) it reports readiness and pings the watchdog from its frame loop.
    """
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise missing_extra("the web service (starlette, uvicorn)", "serve") from None
    from edgeclf.runtime.camera import CameraOptions
    from edgeclf.runtime.classifier import Classifier
    from edgeclf.runtime.notify import Notifier
    from edgeclf.runtime.probes import check_probes, load_probes
    from edgeclf.runtime.stable import StableOptions
    from edgeclf.serve.service import ServeOptions, Service

    if host not in LOOPBACK and not token:
        typer.echo(
            f"warning: listening on {host} without --token: anyone who can reach this address can use the model",
            err=True,
        )
    options = ServeOptions(
        host=host,
        port=port,
        token=token,
        max_body=int(max_upload_mb * 1024 * 1024),
        read_timeout=request_timeout,
        source=source,
        camera=CameraOptions(
            source=source,
            classifier=classifier_options(format_name, backend, threads, top_k, threshold),
            retries=retries,
        ),
        stable=StableOptions(smooth=smooth, hold=hold),
        max_fps=max_fps,
        loop=loop,
        on_change=on_change,
        webhook=webhook,
        board_root=str(board_root),
    )
    notifier = Notifier()
    clf = Classifier.open(model, options.camera.classifier)
    with clf:
        service = Service(clf, options, notifier)
        if not skip_verify:
            report = check_probes(clf, load_probes(clf))
            if not report.ok:
                raise SelfCheckError(report.line())
            service.verify = report.to_dict()
            typer.echo(f"self-check: {report.line()}", err=True)

        _listen(clf, service, notifier, host, port)
        notifier.stopping()
    if service.fatal:
        raise EdgeclfError(f"stopped: {service.fatal}")


def _listen(clf: Classifier, service: Service, notifier: Notifier, host: str, port: int) -> None:
    """Run uvicorn until stopped; says where it listens once bound, and why when it cannot bind."""
    import uvicorn

    from edgeclf.serve.app import create_app

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                typer.echo(
                    f"serving {clf.path.name} ({describe_classifier(clf)}) on http://{shown}:{bound[1]}/", err=True
                )
                sys.stderr.flush()
                notifier.ready(f"serving on port {bound[1]}")

    def stop_on_fatal() -> None:
        server.should_exit = True

    config = uvicorn.Config(
        create_app(service, stop_on_fatal),
        host=host,
        port=port,
        log_level="warning",
        # No logging config of uvicorn's own: its handlers would hold on to the sys.stderr of the
        # moment (a closed stream once an in-process caller such as a test runner restores it);
        # warnings and errors still reach the current stderr through logging's last resort.
        log_config=None,
        access_log=False,
        http="h11",
        loop="asyncio",
        lifespan="on",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=3,
        limit_concurrency=max(64, 4 * service.options.max_pending),
    )
    server = Server(config)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind; say why in our one line
        raise EdgeclfError(
            f"could not listen on {host}:{port} (address in use, or not an address of this machine)"
        ) from None
    if not server.started:
        raise EdgeclfError(f"could not listen on {host}:{port} (address in use, or not an address of this machine)")
