"""ai-edge-litert: the maintained TFLite interpreter (preferred for ``.tflite``; NumPy 1 and 2)."""

from edgeclf.runtime.backends.tflite import TFLiteBackend

BACKEND = TFLiteBackend(
    name="litert",
    module="ai_edge_litert.interpreter",
    suffixes=(".tflite",),
    install="pip install 'edgeclf[edge]' (or: pip install ai-edge-litert)",
)
