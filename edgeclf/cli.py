"""``edgeclf``: the one command line.

Commands are thin (parse, build the stage's config, call the library, print) and live in
``edgeclf/commands/``. Those modules import only light packages at module level; anything that
needs TensorFlow imports it inside the command, so ``edgeclf classify`` works on a Pi without it.

Domain errors (:class:`edgeclf.runtime.errors.EdgeclfError`) are caught here, in one place, and printed
as a single line on stderr with exit code 1. Usage errors keep typer's exit code 2.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from edgeclf.runtime.errors import EdgeclfError

app = typer.Typer(
    name="edgeclf",
    help="Train image classifiers, export them to TFLite/ONNX, and run them on a Raspberry Pi.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# name -> "module:function". Each stage's owner adds its commands here.
COMMANDS: dict[str, str] = {
    "make-demo-data": "edgeclf.commands.data:make_demo_data",
    "train": "edgeclf.commands.train:train",
    "evaluate": "edgeclf.commands.train:evaluate",
    "augment-preview": "edgeclf.commands.train:augment_preview",
    "classify": "edgeclf.commands.runtime:classify",
    "camera": "edgeclf.commands.runtime:camera",
    "export": "edgeclf.commands.export:export",
    "benchmark": "edgeclf.commands.benchmark:benchmark",
    "serve": "edgeclf.commands.serve:serve",
    "verify": "edgeclf.commands.serve:verify",
    "doctor": "edgeclf.commands.doctor:doctor",
}


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """Train image classifiers, export them to TFLite/ONNX, and run them on a Raspberry Pi."""
    if version:
        from edgeclf.runtime import __version__

        typer.echo(f"edgeclf {__version__}")
        raise typer.Exit()


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so a domain error becomes one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdgeclfError as error:
            raise fail(str(error)) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(code=130) from None

    return wrapper


def _register() -> None:
    for name, target in COMMANDS.items():
        module_name, func_name = target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        app.command(name)(_guarded(func))


_register()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
