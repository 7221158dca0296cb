"""The ``edgeclf`` command line: one entry point over the trainer, exporter, runtime and benchmarks."""
