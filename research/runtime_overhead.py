"""What the edge runtime costs on a Pi-like install: import time, peak memory, install size, overhead.

Run it with the Python of the edge-only venv (``make test-edge`` makes ``.venv-edge``: the ``edge``
extra, no TensorFlow), on a run folder exported by ``edgeclf export``::

    .venv-edge/bin/python research/runtime_overhead.py RUN_DIR --image PHOTO.jpg [--format tflite-int8]

Measures (medians; the machine is shared, so each figure is repeated and the spread printed):

- import time of ``edgeclf.runtime.classifier`` in a fresh interpreter, and of the interpreter package
  when the first model is loaded (imported lazily);
- peak RSS (``ru_maxrss``) of a fresh process that loads the model and classifies one image;
- install size of the ``edge`` extra: the files of every distribution ``edgeclf[edge]`` pulls in,
  from their ``RECORD``s in this venv (so the venv's test tools are not counted), and ``du`` of
  the whole site-packages for comparison;
- the runtime's overhead around ``invoke()`` on one JPEG: decode + resize (``preprocess``),
  quantise (``prepare``), ``set_input``/``get_output`` copies and post-processing (scores + top-k),
  against ``invoke()`` alone — with and without Pillow's draft mode.

Writes ``edgeclf/benchmarks/results/runtime_overhead.json`` and prints a table. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from edgeclf.runtime.child import child_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_IMPORT = """
import time
t = time.perf_counter()
import edgeclf.runtime.classifier
print(time.perf_counter() - t)
"""

_LOAD = """
import resource, sys, time, json
t0 = time.perf_counter()
from edgeclf.runtime.classifier import Classifier
t1 = time.perf_counter()
clf = Classifier.from_run(sys.argv[1], format=sys.argv[2] or None)
t2 = time.perf_counter()
predictions = clf.classify(sys.argv[3])
t3 = time.perf_counter()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_classify_s": t3 - t2,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "backend": clf.backend_name, "format": clf.format, "heavy_modules": heavy,
                  "top": predictions[0].label}))
"""


def _python(code: str, *args: str) -> str:
    env = child_env()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip().splitlines()[-1]


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _distribution_size(name: str) -> int:
    dist = metadata.distribution(name)
    total = 0
    for file in dist.files or ():
        path = Path(dist.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    return total


def _requirements(name: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Names of ``name`` and everything it requires (with ``extras``), as installed here."""
    from packaging.requirements import Requirement  # pip vendors it; packaging is in every venv with pytest

    seen: set[str] = set()
    todo = [(name, extras)]
    while todo:
        current, wanted = todo.pop()
        key = current.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(current)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for raw in dist.requires or ():
            requirement = Requirement(raw)
            env = {"extra": ""}
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({**env, "extra": extra}) for extra in ("", *wanted)
            ):
                continue
            todo.append((requirement.name, tuple(requirement.extras)))
    return seen


def install_size() -> dict[str, object]:
    names = sorted(_requirements("edgeclf", ("edge",)))
    sizes = {n: _distribution_size(n) for n in names}
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    du = subprocess.run(["du", "-sh", str(site)], capture_output=True, text=True).stdout.split()[0]
    return {
        "edge_extra_mb": round(sum(sizes.values()) / 1e6, 1),
        "per_distribution_mb": {n: round(s / 1e6, 1) for n, s in sorted(sizes.items(), key=lambda kv: -kv[1])},
        "site_packages_du": du,
        "site_packages": str(site),
    }


def overhead(run_dir: str, fmt: str | None, image: str, repeats: int, threads: int | None) -> dict[str, object]:
    """Median time of each step around ``invoke()`` for a JPEG file (draft on/off) and a camera frame."""
    import numpy as np
    from PIL import Image

    from edgeclf.runtime.classifier import Classifier, ClassifierOptions, top_predictions

    with Image.open(image) as img:
        rgb = np.asarray(img.convert("RGB").resize((1280, 720)))
    frame = np.ascontiguousarray(rgb[:, :, ::-1])  # what OpenCV hands over: 720p BGR
    cases = {
        "jpeg_draft": (image, True, "RGB"),
        "jpeg_no_draft": (image, False, "RGB"),
        "frame_720p_bgr": (frame, True, "BGR"),
        # a camera asked for a small stream (picamera2's "lores", or --width/--height)
        "frame_320x240_bgr": (
            np.ascontiguousarray(np.asarray(Image.fromarray(rgb).resize((320, 240)))[:, :, ::-1]),
            True,
            "BGR",
        ),
    }
    out: dict[str, object] = {}
    for name, (source, draft, order) in cases.items():
        clf = Classifier.from_run(run_dir, options=ClassifierOptions(format=fmt, threads=threads, draft=draft))
        session = clf.session
        steps: dict[str, list[float]] = {k: [] for k in ("preprocess", "prepare", "set_input", "invoke", "post")}
        for i in range(repeats + 3):
            t0 = time.perf_counter()
            pixels = clf.preprocess(source, color_order=order)
            t1 = time.perf_counter()
            tensor = clf.prepare(pixels)
            t2 = time.perf_counter()
            session.set_input(tensor)
            t3 = time.perf_counter()
            session.invoke()
            t4 = time.perf_counter()
            raw = session.get_output()
            top_predictions(clf.postprocess(raw)[0], clf.labels, 1)
            t5 = time.perf_counter()
            if i >= 3:  # warm-up: the first invokes allocate and pack weights
                for key, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                    steps[key].append(seconds * 1000.0)
        medians = {k: statistics.median(v) for k, v in steps.items()}
        runtime = medians["preprocess"] + medians["prepare"] + medians["set_input"] + medians["post"]
        minima = {k: min(v) for k, v in steps.items()}
        runtime_min = minima["preprocess"] + minima["prepare"] + minima["set_input"] + minima["post"]
        out[name] = {
            "overhead_vs_invoke_of_minima": round(runtime_min / minima["invoke"], 3),
            "model": f"{clf.format} ({clf.backend_name}, {session.threads} threads, "
            f"input {clf.spec.width}x{clf.spec.height})",
            "median_ms": {k: round(v, 3) for k, v in medians.items()},
            "spread_ms": {k: {"min": round(min(v), 3), "max": round(max(v), 3)} for k, v in steps.items()},
            "runtime_ms": round(runtime, 3),
            "overhead_vs_invoke": round(runtime / medians["invoke"], 3),
        }
        clf.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--image", required=True, help="a typical 1-3 MP JPEG")
    parser.add_argument("--format", default="", help="artifact format (default: the classifier's choice)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--processes", type=int, default=5, help="fresh processes for import time / RSS")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "edgeclf" / "benchmarks" / "results" / "runtime_overhead.json"))
    args = parser.parse_args()

    from PIL import Image

    with Image.open(args.image) as img:
        megapixels = img.size[0] * img.size[1] / 1e6
        image_info = {"path": args.image, "size": list(img.size), "megapixels": round(megapixels, 2)}

    imports = [float(_python(_IMPORT)) for _ in range(args.processes)]
    loads = [json.loads(_python(_LOAD, args.run_dir, args.format, args.image)) for _ in range(args.processes)]
    load_before = os.getloadavg()
    result = {
        "python": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "image": image_info,
        "import_edge_runtime_s": _spread(imports),
        "fresh_process": {
            "import_s": _spread([x["import_s"] for x in loads]),
            "load_model_s": _spread([x["load_s"] for x in loads]),
            "first_classify_s": _spread([x["first_classify_s"] for x in loads]),
            "peak_rss_mb": _spread([x["peak_rss_mb"] for x in loads]),
            "backend": loads[0]["backend"],
            "format": loads[0]["format"],
            "tensorflow_or_keras_loaded": loads[0]["heavy_modules"],
        },
        "install": install_size(),
        "overhead": overhead(args.run_dir, args.format or None, args.image, args.repeats, args.threads),
    }
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    fresh = result["fresh_process"]
    print(f"python: {sys.executable}; image {image_info['size'][0]}x{image_info['size'][1]} ({megapixels:.1f} MP)")
    print(f"import edgeclf.runtime.classifier: {statistics.median(imports) * 1000:.0f} ms (median of {len(imports)})")
    print(
        f"fresh process, {fresh['format']} on {fresh['backend']}: load model "
        f"{fresh['load_model_s']['median'] * 1000:.0f} ms (interpreter import included), first classify "
        f"{fresh['first_classify_s']['median'] * 1000:.0f} ms, peak RSS {fresh['peak_rss_mb']['median']:.0f} MB"
    )
    install = result["install"]
    print(f"edge extra install size: {install['edge_extra_mb']} MB; site-packages du: {install['site_packages_du']}")
    for name, row in result["overhead"].items():
        m = row["median_ms"]
        print(
            f"{name:>14}: {row['model']}: preprocess {m['preprocess']:.2f} ms, quantise {m['prepare']:.3f} ms, "
            f"set_input {m['set_input']:.3f} ms, post {m['post']:.3f} ms -> runtime {row['runtime_ms']:.2f} ms "
            f"vs invoke {m['invoke']:.2f} ms = {row['overhead_vs_invoke'] * 100:.0f}% "
            f"(of minima: {row['overhead_vs_invoke_of_minima'] * 100:.0f}%)"
        )
    print(f"load average before/after: {load_before[0]:.1f} / {result['load_average']['after'][0]:.1f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
