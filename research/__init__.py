"""One-off research and measurement scripts (run from a checkout: ``python research/NAME.py``).

Not part of the installed package: nothing under ``edgeclf``, ``edge_runtime``, ``trainer``,
``exporter`` or ``benchmarks`` imports from here, and ``pyproject.toml`` does not package it.
"""
