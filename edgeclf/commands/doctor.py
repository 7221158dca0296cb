"""``edgeclf doctor``: check this device for what edgeclf needs, one line per finding with its fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def doctor(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A run folder: also load each of its model files in each interpreter.")
    ] = None,
    python: Annotated[
        Path | None, typer.Option(help="Examine another Python (e.g. a venv's bin/python) instead of this one.")
    ] = None,
    root: Annotated[
        Path, typer.Option(help="Prefix of /proc, /sys, /dev and /etc (for a copied or fake tree).")
    ] = Path("/"),
    json_output: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Python and OS, interpreters and which model files they run, NumPy ABI, cameras, memory, disk, temperature."""
    import dataclasses

    from edgeclf.runtime.doctor import System, format_finding, run_doctor

    system = System(root=root, disk_path=run_dir if run_dir is not None else Path("."))
    if python is not None:
        system = dataclasses.replace(system, python=str(python))
    findings = run_doctor(system, run_dir)
    if json_output:
        typer.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for finding in findings:
            typer.echo(format_finding(finding))
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(code=1)
