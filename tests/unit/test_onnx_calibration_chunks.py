"""onnx-int8 calibrates in chunks that divide the image set evenly (bounded memory on large networks)."""

from __future__ import annotations

import numpy as np
import pytest


def _onnx():
    # Register the built-in formats in their order first: importing edgeclf.exporter.onnx alone would
    # register the ONNX formats ahead of the TFLite ones.
    from edgeclf.exporter import all_formats

    all_formats()
    from edgeclf.exporter import onnx

    return onnx


@pytest.mark.parametrize("count, chunk", [(300, 15), (200, 10), (64, 16), (7, 7), (17, 1), (1, 1)])
def test_chunk_is_the_largest_even_divisor_up_to_16(count, chunk):
    calibration_chunk = _onnx().calibration_chunk
    assert calibration_chunk(count) == chunk
    assert count % calibration_chunk(count) == 0


def test_reader_replays_each_range_once():
    images = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
    reader = _onnx()._CalibrationReader(images, "images")
    assert len(reader) == 6
    reader.set_range(start_index=2, end_index=4)
    got = [reader.get_next(), reader.get_next(), reader.get_next()]
    np.testing.assert_array_equal(got[0]["images"], images[2:3])
    np.testing.assert_array_equal(got[1]["images"], images[3:4])
    assert got[2] is None
