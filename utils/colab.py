"""Set-up for a notebook opened where the course is not installed: Colab, or any Jupyter without it.

Every notebook's first code cell is this file down to NOTEBOOK_CELL_ENDS, pasted in by the build
(`python -m utils.authoring.build`) after the repository URL from pyproject.toml's `[project.urls] Repository`, and
followed by `setup_course(REPOSITORY_URL)`. It has to run before the course can be imported, so it uses the standard
library only and imports nothing from the course.

Where the course imports (a clone with `pip install -e .`), it does nothing. Elsewhere it clones the repository into
`./ddpm-course`, installs it with pip, and makes it importable in the running kernel. Without network (or without
git) it stops with one line saying what failed and what to do, not a traceback. In Colab it also says whether the
runtime has a GPU (the notebooks pick CUDA by themselves when there is one) and how to get one when there is not.
"""

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path


class CourseSetupError(RuntimeError):
    """The course could not be fetched or installed. Shown as its one-line message, like a grader's failure."""

    def _render_traceback_(self) -> list[str]:  # what IPython (and Colab) show instead of a traceback
        return [f"\x1b[31m{self}\x1b[0m"]


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def course_importable() -> bool:
    """True when this Python can import the course (its `graders` and `utils.colab` both resolve)."""
    try:
        return importlib.util.find_spec("graders") is not None and importlib.util.find_spec("utils.colab") is not None
    except (ImportError, ValueError):  # a parent package that is not ours, or a half-installed one
        return False


def setup_course(repository_url: str, folder: str = "ddpm-course", run=subprocess.run) -> None:
    """Make the course importable here: nothing to do where it is installed, else clone it into `folder` (relative
    to the working directory) and install it.

    `run` runs a command (subprocess.run; tests pass a fake). Raises CourseSetupError with a one-line message when a
    step fails. (No module-level constants: grading a notebook runs only its imports and definitions.)
    """
    if course_importable():
        print("The course is installed here: nothing to set up.")
    else:
        clone = Path(folder).resolve()
        print(f"The course is not installed in this Python (Colab?): fetching it from {repository_url} into {clone}.")
        if not (clone / "pyproject.toml").is_file():
            _run_step(
                run,
                ["git", "clone", "--depth", "1", repository_url, str(clone)],
                "download the course",
                f"Check the internet connection (in Colab: Runtime > Reconnect), or clone {repository_url} "
                "yourself and open the notebook from the clone.",
            )
        _run_step(
            run,
            [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(clone)],
            "install the course",
            f"Run `pip install -e {clone}` in a terminal to see pip's full message.",
        )
        # The running kernel read its .pth files at start-up and does not see the new install: add the clone itself.
        sys.path.insert(0, str(clone))
        importlib.invalidate_caches()
        print("Installed: the rest of this notebook runs as it is.")
    if in_colab():
        report_colab_device()


def _run_step(run, command: list[str], what: str, advice: str) -> None:
    try:
        result = run(command, capture_output=True, text=True)
    except OSError as e:  # the program itself is missing (no git)
        raise CourseSetupError(f"Could not {what}: {command[0]} is not available ({e.strerror}). {advice}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise CourseSetupError(f"Could not {what}: `{' '.join(command[:3])} ...` failed ({reason}). {advice}")


def report_colab_device() -> None:
    """Say whether this Colab runtime has a GPU; without one, how to switch to one."""
    import torch  # Colab always has it; imported here so that the rest of this file needs the standard library only

    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}. The notebooks train on it (get_device() picks CUDA).")
    else:
        print(
            "No GPU in this runtime: everything runs, but Part 3 then trains a small model on the CPU. For a GPU, "
            "choose Runtime > Change runtime type > Hardware accelerator: GPU (e.g. T4), save, then run the "
            "notebook again from the top (the runtime restarts, so this cell installs the course again)."
        )


# NOTEBOOK_CELL_ENDS: what follows is for the build only and is not pasted into the notebooks.

COLAB_BRANCH = "main"  # the branch the "Open in Colab" badges point to


def colab_badge(repository_url: str, notebook_path: str, branch: str = COLAB_BRANCH) -> str:
    """Markdown for an "Open in Colab" badge that opens `notebook_path` of the GitHub repository `repository_url`."""
    prefix = "https://github.com/"
    if not repository_url.startswith(prefix):
        raise ValueError(f"Colab opens notebooks from GitHub: expected {prefix}OWNER/NAME, got {repository_url}")
    repository = repository_url.removeprefix(prefix).removesuffix(".git").strip("/")
    link = f"https://colab.research.google.com/github/{repository}/blob/{branch}/{notebook_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"


def setup_cell(repository_url: str) -> str:
    """The source of every notebook's first code cell: this file's set-up code, the URL, and the call."""
    source = Path(__file__).read_text()
    body = source[: source.index("# NOTEBOOK_CELL_ENDS")]
    body = body[body.index('"""', 3) + 3 :].strip("\n")  # without the module docstring
    return (
        '# @title Set-up: installs the course where it is missing (Colab) { display-mode: "form" }\n'
        f"# Generated by `python -m utils.authoring.build` from utils/colab.py and pyproject.toml. Run this cell first.\n"
        f'REPOSITORY_URL = "{repository_url}"  # pyproject.toml, [project.urls] Repository\n\n'
        f"{body}\n\n\nsetup_course(REPOSITORY_URL)"
    )
