"""What ships: the packages pyproject.toml installs never need the research scripts, which it leaves out."""

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[2]


def _shipped_patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["packages"]["find"]["include"]


def _shipped_modules() -> list[Path]:
    patterns = _shipped_patterns()
    folders = [p for p in ROOT.iterdir() if (p / "__init__.py").is_file() and any(fnmatch(p.name, g) for g in patterns)]
    return [f for folder in folders for f in folder.rglob("*.py")]


def test_the_research_folder_is_not_packaged():
    assert (ROOT / "research" / "__init__.py").is_file()
    assert not any(fnmatch("research", pattern) for pattern in _shipped_patterns())


def test_no_shipped_module_imports_a_research_script():
    modules = _shipped_modules()
    assert any(f.parent.name == "benchmarks" for f in modules)  # the walk really found the packages
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "research"]
    assert offenders == []
