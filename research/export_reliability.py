"""Does the newcomer's first command pass every time? ``make train export`` on N freshly trained demo models.

For each seed: ``edgeclf train --data DATA --seed N --epochs 30 --out WORK/runs/seed-N`` (what
``make train`` runs on the demo data, with its own seed), then ``edgeclf export RUN --json`` (what
``make export`` runs), each through the real command line in its own process. One JSON line per
seed is appended to the results file as soon as that seed is done, so an interrupted loop resumes
where it stopped; a trained model is reused, so the exports can be redone on the same ten models
with another results file (``--results``) after the exporter changes.

    nice -n 10 .venv/bin/python research/export_reliability.py --work .cache/export-reliability
    .venv/bin/python research/export_reliability.py --work .cache/export-reliability --summary

``--stage train`` only trains, ``--stage export`` only exports the seeds already trained;
``--preset`` passes a preset to ``train`` (default: the command's own default, as ``make train``
would use). The summary prints
one row per seed: Keras accuracy, and per int8 file its status, agreement, accuracy change and the
quantisation variant the exporter kept (with the agreement of each variant it tried first).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeclf.runtime.child import child_env

ROOT = Path(__file__).resolve().parents[1]
DEMO_EPOCHS = 30  # the Makefile's DEMO_TRAIN_ARGS
INT8_FORMATS = ("tflite-int8", "onnx-int8")
TFLITE_RUNTIME = "tflite-runtime==2.14"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeclf.cli", *args]


def _run(command: list[str], log: Path) -> tuple[int, float, str]:
    """Run ``command`` with its stderr to ``log``; return exit code, seconds and stdout."""
    started = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env(quiet_tensorflow=True), cwd=ROOT
        )
    return done.returncode, time.perf_counter() - started, done.stdout


def make_data(data: Path) -> None:
    """The demo data set, made once with ``edgeclf make-demo-data`` (the Makefile's command)."""
    if (data / ".complete").exists():
        return
    if data.exists():
        shutil.rmtree(data)
    code, _, _ = _run(_cli("make-demo-data", str(data)), data.parent / "make-demo-data.log")
    if code != 0:
        raise SystemExit(f"make-demo-data failed (exit {code}); see {data.parent / 'make-demo-data.log'}")


def trained(run: Path) -> bool:
    """A run folder that finished training (the manifest is written last)."""
    return (run / "model.keras").is_file() and (run / "manifest.json").is_file()


def train(data: Path, run: Path, seed: int, epochs: int, preset: str | None) -> dict[str, Any]:
    """Train one seed into ``run`` (a half-finished folder from an interrupted loop is started again)."""
    if trained(run):
        return {"train_seconds": None, "train_reused": True}
    if run.exists():
        shutil.rmtree(run)
    run.parent.mkdir(parents=True, exist_ok=True)
    args = ["train", "--data", str(data), "--seed", str(seed), "--epochs", str(epochs), "--out", str(run)]
    if preset:
        args += ["--preset", preset]
    code, seconds, _ = _run(_cli(*args), run.parent / f"{run.name}.train.log")
    if code != 0 or not trained(run):
        raise SystemExit(f"training seed {seed} failed (exit {code}); see {run.parent / f'{run.name}.train.log'}")
    return {"train_seconds": round(seconds, 1), "train_reused": False}


def export(run: Path, extra: list[str]) -> dict[str, Any]:
    """``edgeclf export RUN --json``; the report's figures per format, and the exit code."""
    code, seconds, stdout = _run(_cli("export", str(run), "--json", *extra), run.parent / f"{run.name}.export.log")
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        return {"exit_code": code, "export_seconds": round(seconds, 1), "error": (stdout or "no JSON")[-300:]}
    formats = {}
    for result in report["results"]:
        v = result.get("validation") or {}
        formats[result["format"]] = {
            "status": result["status"],
            "agreement": v.get("agreement"),
            "max_abs_diff": v.get("max_abs_diff"),
            "accuracy_change": v.get("accuracy_change"),
            "variant": result.get("variant"),
            "attempts": [
                {"variant": a.get("variant"), "agreement": a.get("agreement"), "failures": a.get("failures")}
                for a in result.get("attempts") or ()
            ],
            "runtimes": {
                name: {
                    "status": r.get("status"),
                    "agreement": r.get("agreement"),
                    "max_abs_diff": r.get("max_abs_diff"),
                    "accuracy_change": r.get("accuracy_change"),
                }
                for name, r in (result.get("runtimes") or {}).items()
            },
        }
    return {
        "exit_code": code,
        "export_seconds": round(seconds, 1),
        "validation_images": report["validation"]["images"],
        "keras_accuracy": report["validation"]["keras_accuracy"],
        "formats": formats,
    }


def done_seeds(results: Path) -> set[int]:
    """Seeds that already have a line in the results file."""
    if not results.exists():
        return set()
    return {json.loads(line)["seed"] for line in results.read_text().splitlines() if line.strip()}


def summary(results: Path) -> str:
    """A markdown table of the results file: one row per seed."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    columns = " | ".join(f"{f} (agreement, Δacc, variant; tried first)" for f in INT8_FORMATS)
    head = f"| seed | exit | Keras acc | {columns} | tflite-int8 in tflite-runtime 2.14 (agreement, max Δp, Δacc)"
    lines = [head + " | other formats |", "|" + "---|" * (5 + len(INT8_FORMATS))]
    for row in sorted(rows, key=lambda r: r["seed"]):
        if "formats" not in row:
            lines.append(f"| {row['seed']} | {row.get('exit_code')} | — | {row.get('error', '')} |")
            continue
        cells = []
        for name in INT8_FORMATS:
            f = row["formats"].get(name)
            if f is None:
                cells.append("—")
                continue
            tried = "; ".join(f"{a['variant']} {a['agreement']:.2%}" for a in f["attempts"][:-1] if a["agreement"])
            change = f["accuracy_change"] * 100 if f["accuracy_change"] is not None else float("nan")
            cell = f"{f['status']} {f['agreement']:.2%}, {change:+.2f}, {f['variant'] or '—'}"
            cells.append(cell + (f"; {tried}" if tried else ""))
        old = (row["formats"].get("tflite-int8") or {}).get("runtimes", {}).get(TFLITE_RUNTIME)
        cells.append(
            "—"
            if not old or old["agreement"] is None
            else f"{old['status']} {old['agreement']:.2%}, {old['max_abs_diff']:.3f}, "
            + ("—" if old.get("accuracy_change") is None else f"{old['accuracy_change'] * 100:+.2f}")
        )
        others = [n for n, f in row["formats"].items() if n not in INT8_FORMATS and f["status"] != "passed"]
        other = "all passed" if not others else "not passed: " + ", ".join(others)
        lines.append(
            f"| {row['seed']} | {row['exit_code']} | {row['keras_accuracy']:.2%} | "
            + " | ".join(cells)
            + f" | {other} |"
        )
    passed = sum(1 for r in rows if r.get("exit_code") == 0)
    lines.append(f"\n{passed} of {len(rows)} exports exited 0.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "export-reliability")
    parser.add_argument("--seeds", default="0-9", help="a range 'A-B' or a comma list (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    parser.add_argument("--preset", default=None, help="train preset (default: the train command's default)")
    parser.add_argument("--results", type=Path, default=None, help="JSONL file (default: WORK/results.jsonl)")
    parser.add_argument(
        "--stage", choices=("all", "train", "export"), default="all", help="export: only seeds already trained"
    )
    parser.add_argument("--export-arg", action="append", default=[], help="extra argument to `edgeclf export`")
    parser.add_argument("--summary", action="store_true", help="only print the table of the results file")
    options = parser.parse_args(argv)
    work = options.work.resolve()
    results = (options.results or work / "results.jsonl").resolve()
    if options.summary:
        print(summary(results))
        return 0
    if "-" in options.seeds:
        first, last = options.seeds.split("-")
        seeds = list(range(int(first), int(last) + 1))
    else:
        seeds = [int(s) for s in options.seeds.split(",")]
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    make_data(data)
    skip = done_seeds(results)
    for seed in seeds:
        run = work / "runs" / f"seed-{seed}"
        if options.stage != "train" and seed in skip:
            continue
        if options.stage == "export" and not trained(run):
            print(f"seed {seed}: not trained yet, skipped", flush=True)
            continue
        record: dict[str, Any] = {"seed": seed, **train(data, run, seed, options.epochs, options.preset)}
        print(f"seed {seed}: trained ({record['train_seconds']} s)", flush=True)
        if options.stage == "train":
            continue
        record.update(export(run, options.export_arg))
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with results.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(f"seed {seed}: export exit {record['exit_code']} ({record['export_seconds']} s)", flush=True)
    if options.stage != "train" and results.exists():
        print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
