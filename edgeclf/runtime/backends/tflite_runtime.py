"""tflite-runtime: the older Pis' TFLite interpreter. 2.14.0 is its last release (Python <= 3.11, numpy<2)."""

from edgeclf.runtime.backends.tflite import TFLiteBackend

BACKEND = TFLiteBackend(
    name="tflite-runtime",
    module="tflite_runtime.interpreter",
    suffixes=(".tflite",),
    install="pip install tflite-runtime==2.14.0 'numpy<2' (wheels for Python <= 3.11 only)",
)
