"""Which quantisation settings make int8 really faster than float? (the research behind docs/benchmarks.md)

Builds a preset's network (untrained: speed does not depend on the weights), converts it to many
TFLite and ONNX variants — fp32/fp16/dynamic/int8, per-channel vs per-tensor, QDQ vs QOperator,
uint8 vs int8 activations, ``reduce_range``, static vs dynamic batch — calibrating int8 on real
photos decoded by ``edgeclf.runtime.preprocess``, then times ``invoke`` of every variant under several
interpreter settings (XNNPACK on/off, threads, ONNX Runtime graph optimisation level), interleaved.

``--cpu`` times each call by the calling thread's CPU time (``time.thread_time``): with one thread
that is the whole computation, and the machine's load does not inflate it as it does wall time.

    nice -n 10 .venv/bin/python research/int8_speed.py export /tmp/int8 --data ../shared/data/cars-vs-bikes
    nice -n 10 .venv/bin/python research/int8_speed.py measure /tmp/int8 --cpu --threads 1 --rounds 6
    nice -n 10 .venv/bin/python research/int8_speed.py measure /tmp/int8 --threads 2 --rounds 30 --only 'int8|fp32'

A research tool, not part of the runtime: it builds interpreters directly to vary settings the
runtime deliberately fixes (the runtime always uses XNNPACK and ORT_ENABLE_ALL).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeclf.kerasio import import_tensorflow
from edgeclf.runtime.errors import first_line

ONNX_VARIANTS = {
    # name: (quant_format, activation, weight, per_channel, reduce_range)
    "qdq_u8s8_pc": ("QDQ", "QUInt8", "QInt8", True, False),
    "qdq_s8s8_pc": ("QDQ", "QInt8", "QInt8", True, False),
    "qdq_u8s8_pt": ("QDQ", "QUInt8", "QInt8", False, False),
    "qdq_s8s8_pt": ("QDQ", "QInt8", "QInt8", False, False),
    "qdq_u8u8_pt": ("QDQ", "QUInt8", "QUInt8", False, False),
    "qdq_u8s8_pc_rr": ("QDQ", "QUInt8", "QInt8", True, True),
    "qop_u8s8_pc": ("QOperator", "QUInt8", "QInt8", True, False),
    "qop_u8s8_pt": ("QOperator", "QUInt8", "QInt8", False, False),
    "qop_s8s8_pc": ("QOperator", "QInt8", "QInt8", True, False),
}


def _calibration(data: Path, spec, count: int) -> np.ndarray:
    from edgeclf.runtime.dataset import load_samples, open_labelled_folder

    folder = open_labelled_folder(data)
    samples = list(folder.split("train"))
    random.Random(0).shuffle(samples)
    return load_samples(samples[:count], spec).images


def export(out: Path, data: Path, preset_name: str, size: int | None, count: int) -> None:
    """Write every variant into ``out``."""
    tf, keras = import_tensorflow()
    import onnx
    import tf2onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgeclf.exporter.formats import Quantization
    from edgeclf.trainer.presets import count_flops, get_preset

    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(preset_name)
    spec = preset.input_spec(size)
    calib = _calibration(data, spec, count)
    keras.utils.set_random_seed(0)
    model = preset.build(spec, 2)
    print(
        f"{preset_name} {spec.height}x{spec.width}: {count_flops(model) / 1e9:.3f} GFLOP/frame; "
        f"{len(calib)} calibration images"
    )
    inputs = keras.Input(batch_shape=(1, *spec.shape), dtype="uint8", name="images")
    static = keras.Model(inputs, model(inputs))  # a static batch-1 signature, as the exporter makes

    def representative():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    # The exporter's own presets set the converter (Quantization.apply_to_converter).
    presets = {
        "fp32": Quantization.fp32(),
        "fp16": Quantization.fp16(),
        "dynamic": Quantization.dynamic(),
        "int8": Quantization.int8(),
        "int8-pt-dense": Quantization.int8(),
    }
    for batch_name, net in (("b1", static), ("dyn", model)):
        for mode in ("fp32", "fp16", "dynamic", "int8", "int8-pt-dense"):
            if batch_name == "dyn" and mode == "int8-pt-dense":
                continue
            converter = tf.lite.TFLiteConverter.from_keras_model(net)
            presets[mode].apply_to_converter(converter, representative, per_channel_dense=mode != "int8-pt-dense")
            (out / f"tfl_{mode}_{batch_name}.tflite").write_bytes(converter.convert())
        signature = (tf.TensorSpec((1 if batch_name == "b1" else None, *spec.shape), tf.uint8, name="images"),)
        proto, _ = tf2onnx.convert.from_keras(net, input_signature=signature, opset=17)
        fp32 = out / f"onnx_fp32_{batch_name}.onnx"
        onnx.save(proto, fp32)
        pre = out / f"prep_{batch_name}.onnx.tmp"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        input_name = proto.graph.input[0].name

        class Reader(CalibrationDataReader):
            def __init__(self, name: str = input_name) -> None:
                self._it = iter([{name: calib[i : i + 1]} for i in range(len(calib))])

            def get_next(self):
                return next(self._it, None)

        for name, (fmt, act, weight, per_channel, reduce_range) in ONNX_VARIANTS.items():
            if batch_name == "dyn" and name not in ("qdq_u8s8_pc", "qdq_s8s8_pc"):
                continue
            quantize_static(
                str(pre),
                str(out / f"onnx_{name}_{batch_name}.onnx"),
                Reader(),
                quant_format=getattr(QuantFormat, fmt),
                activation_type=getattr(QuantType, act),
                weight_type=getattr(QuantType, weight),
                per_channel=per_channel,
                reduce_range=reduce_range,
            )
        if batch_name == "b1":
            convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
            quantize_static(
                str(pre), str(out / "onnx_qdq_u8s8_pc_float-conv1_b1.onnx"), Reader(),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                per_channel=True, nodes_to_exclude=convs[:1],
            )  # fmt: skip
            quantize_dynamic(str(pre), str(out / "onnx_dynamicq_b1.onnx"), weight_type=QuantType.QUInt8)
        pre.unlink()
    print(f"wrote {len(list(out.glob('*.tflite')))} .tflite and {len(list(out.glob('*.onnx')))} .onnx files to {out}")


def _configs(models: Path, threads: int, frame: np.ndarray) -> dict[str, Callable[[], Callable[[], None]]]:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def litert(path: Path, resolver) -> Callable[[], None]:
        interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], frame)
        return interpreter.invoke

    def onnxrt(path: Path, level) -> Callable[[], None]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = level
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        binding = session.io_binding()
        binding.bind_cpu_input(session.get_inputs()[0].name, frame)
        binding.bind_output(session.get_outputs()[0].name)
        return lambda: session.run_with_iobinding(binding)

    configs: dict[str, Callable[[], Callable[[], None]]] = {}
    for path in sorted(models.glob("*.tflite")):
        configs[f"{path.stem} | litert xnnpack"] = lambda p=path: litert(p, OpResolverType.AUTO)
        configs[f"{path.stem} | litert builtin"] = lambda p=path: litert(
            p, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    for path in sorted(models.glob("*.onnx")):
        configs[f"{path.stem} | ort all"] = lambda p=path: onnxrt(p, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        configs[f"{path.stem} | ort basic"] = lambda p=path: onnxrt(p, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    return configs


def measure(models: Path, threads: int, rounds: int, calls: int, cpu: bool, only: str | None) -> None:
    """Time every variant, interleaved, and print p50 / IQR / min per config, fastest first."""
    size = None
    for path in models.glob("tfl_fp32_b1.tflite"):
        from ai_edge_litert.interpreter import Interpreter

        size = tuple(Interpreter(model_path=str(path)).get_input_details()[0]["shape"][1:3])
    if size is None:
        raise SystemExit(f"{models}: no tfl_fp32_b1.tflite; run `export` first")
    frame = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    configs = {k: v for k, v in _configs(models, threads, frame).items() if only is None or re.search(only, k)}
    runners = {}
    for name, make in configs.items():
        try:
            run = make()
            for _ in range(5):
                run()
            runners[name] = run
        except Exception as error:  # a variant an interpreter refuses is reported, not fatal
            print(f"{name}: could not run ({first_line(error)[:120]})")
    clock = time.thread_time if cpu else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(rounds):
        names = list(runners)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = runners[name]
            run()
            for _ in range(calls):
                start = clock()
                run()
                times[name].append((clock() - start) * 1000.0)
    what = "CPU ms (calling thread)" if cpu else "wall ms"
    print(f"{threads} thread(s), {what}, {rounds} rounds x {calls} calls, load average {os.getloadavg()[0]:.1f}")
    print(f"{'variant | interpreter':58s} {'p50':>7s} {'IQR':>6s} {'min':>7s}")
    for name, values in sorted(times.items(), key=lambda kv: float(np.median(kv[1]))):
        p25, p50, p75 = np.percentile(values, [25, 50, 75])
        print(f"{name:58s} {p50:7.2f} {p75 - p25:6.2f} {min(values):7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="build the preset's network and write every variant")
    exp.add_argument("out", type=Path)
    exp.add_argument("--data", type=Path, required=True, help="labelled photos; calibration uses its train split")
    exp.add_argument("--preset", default="seed")
    exp.add_argument("--size", type=int, default=None, help="input side (default: the preset's)")
    exp.add_argument("--calibration-images", type=int, default=64)
    mea = sub.add_parser("measure", help="time every variant, interleaved")
    mea.add_argument("models", type=Path)
    mea.add_argument("--threads", type=int, default=2)
    mea.add_argument("--rounds", type=int, default=10)
    mea.add_argument("--calls", type=int, default=5, help="timed calls per variant per round")
    mea.add_argument("--cpu", action="store_true", help="time by the calling thread's CPU time (use with --threads 1)")
    mea.add_argument("--only", default=None, help="regular expression on 'variant | interpreter'")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.command == "export":
        export(args.out, args.data, args.preset, args.size, args.calibration_images)
    else:
        measure(args.models, args.threads, args.rounds, args.calls, args.cpu, args.only)


if __name__ == "__main__":
    main()
