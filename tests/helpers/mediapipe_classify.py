"""Classify photos with MediaPipe Tasks' ``ImageClassifier``; run inside a Python that has ``mediapipe``.

``python mediapipe_classify.py MODEL.tflite HEIGHT WIDTH FILTER PHOTO...`` prints one JSON object: the
model's standard metadata as MediaPipe's generated schema code reads it, and for each photo the
categories MediaPipe returns (best first) for two inputs — the photo decoded upright at its own
size (MediaPipe resizes it, as a MediaPipe user would) and edgeclf's own preprocessed
``HEIGHT×WIDTH`` array (the same pixels edgeclf feeds its interpreter). Photos are decoded with
``edgeclf.runtime.preprocess`` (this checkout on ``PYTHONPATH``; it needs only numpy and Pillow).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def _metadata(path: str) -> dict[str, Any] | None:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as schema

    with open(path, "rb") as file:
        data = file.read()
    model = schema.Model.GetRootAsModel(data, 0)
    names = [model.Metadata(i).Name().decode() for i in range(model.MetadataLength())]
    if "TFLITE_METADATA" not in names:
        return None
    entry = model.Metadata(names.index("TFLITE_METADATA"))
    buffer = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    root = meta.ModelMetadataT.InitFromObj(meta.ModelMetadata.GetRootAsModelMetadata(buffer, 0))
    graph = root.subgraphMetadata[0]
    image, scores = graph.inputTensorMetadata[0], graph.outputTensorMetadata[0]
    options = image.processUnits[0].options
    return {
        "identifier_ok": bool(meta.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)),
        "name": root.name.decode(),
        "min_parser_version": root.minParserVersion.decode(),
        "input_content_type": image.content.contentPropertiesType,
        "input_color_space": image.content.contentProperties.colorSpace,
        "input_mean": [float(x) for x in options.mean],
        "input_std": [float(x) for x in options.std],
        "output_files": [(f.name.decode(), f.type) for f in scores.associatedFiles],
    }


def _categories(result: Any) -> list[list[Any]]:
    return [[c.category_name or "", float(c.score)] for c in result.classifications[0].categories]


def main(argv: list[str]) -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from edgeclf.runtime.manifest import InputSpec
    from edgeclf.runtime.preprocess import load_image, preprocess

    model, height, width, resize_filter, photos = argv[0], int(argv[1]), int(argv[2]), argv[3], argv[4:]
    spec = InputSpec(height=height, width=width, resize_filter=resize_filter)
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=-1)
    out: dict[str, Any] = {"metadata": _metadata(model), "own_size": [], "edgeclf_input": []}
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for photo in photos:
            upright = np.ascontiguousarray(np.asarray(load_image(photo), dtype=np.uint8))
            same = preprocess(photo, spec)
            for key, pixels in (("own_size", upright), ("edgeclf_input", same)):
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels)
                out[key].append(_categories(classifier.classify(image)))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
