"""Graders for the course: one check per exercise step, callable from a notebook or through pytest.

In a notebook:   `import graders.part1 as grader` then `grader.check_linear_schedule(linear_schedule)`.
From a shell:    `pytest tests/test_part1.py` (your `exercises/part1.py`), or add `--impl PATH` for any file or notebook.
"""

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _check_own_modules() -> None:
    """Fail loudly if another installed package named like ours (`utils` is common) would be imported instead."""
    for name in ("utils", "exercises", "solutions"):
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is None or REPO_ROOT not in origin.parents:
            raise ImportError(
                f"`import {name}` finds {origin or 'nothing'}, not this course's {REPO_ROOT / name}. "
                "Run Python from the course's folder (the one holding README.md), or install the course with "
                '`pip install -e ".[dev]"` there; if another package named {name!r} is installed, uninstall it '
                "or use a fresh virtual environment."
            )


_check_own_modules()
