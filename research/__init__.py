"""One-off research and measurement scripts (run from a checkout: ``python research/NAME.py``).

Not part of the installed package: nothing under ``edgeclf``, ``edgeclf.runtime``, ``edgeclf.trainer``,
``edgeclf.exporter`` or ``edgeclf.benchmarks`` imports from here, and ``pyproject.toml`` does not package it.
"""
