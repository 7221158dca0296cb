"""Reusable test helpers (importable as ``helpers.*``: ``tests/`` is on ``sys.path`` via its conftest)."""
