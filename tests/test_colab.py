"""The notebooks' set-up cell (utils/colab.py): nothing to do where the course is installed, a clone and an install
elsewhere, one clear line when that fails (no network, no git), and the GPU advice in Colab; all without network."""

import json
import subprocess
import sys

import pytest
import torch

from utils import colab
from utils.authoring import build

FAILED_CLONE = (
    "Cloning into 'ddpm-course'...\nfatal: unable to access 'https://github.com/ddpm-course/ddpm-course/': "
    "Could not resolve host: github.com\n"
)


class FakeRun:
    """Stands in for subprocess.run: records each command and answers with `answers[program]` (a return code and
    stderr), or raises it when it is an exception. A successful clone creates the clone's pyproject.toml."""

    def __init__(self, **answers):
        self.answers, self.commands = answers, []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        program = "git" if command[0] == "git" else "pip"
        answer = self.answers.get(program, (0, ""))
        if isinstance(answer, Exception):
            raise answer
        code, stderr = answer
        if program == "git" and code == 0:
            (colab.Path(command[-1]) / "pyproject.toml").parent.mkdir(parents=True)
            (colab.Path(command[-1]) / "pyproject.toml").write_text("")
        return subprocess.CompletedProcess(command, code, "", stderr)


@pytest.fixture
def elsewhere(monkeypatch, tmp_path):
    """A Python where the course does not import (as in Colab), working in an empty folder, not in Colab."""
    monkeypatch.setattr(colab, "course_importable", lambda: False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def test_where_the_course_is_installed_nothing_happens(capsys):
    run = FakeRun()
    assert colab.course_importable()
    colab.setup_course("https://github.com/someone/ddpm-course", run=run)
    assert run.commands == [] and "nothing to set up" in capsys.readouterr().out


def test_elsewhere_it_clones_installs_and_makes_the_course_importable(elsewhere, capsys):
    run = FakeRun()
    colab.setup_course("https://github.com/someone/fork", run=run)
    clone = elsewhere / "ddpm-course"
    assert run.commands == [
        ["git", "clone", "--depth", "1", "https://github.com/someone/fork", str(clone)],
        [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(clone)],
    ]
    assert sys.path[0] == str(clone)
    assert "fetching it from https://github.com/someone/fork" in capsys.readouterr().out
    run = FakeRun()
    colab.setup_course("https://github.com/someone/fork", run=run)  # run again: the clone is there, install only
    assert [c[0] for c in run.commands] == [sys.executable]


@pytest.mark.parametrize(
    "answers, expected",
    [
        (
            {"git": (128, FAILED_CLONE)},
            (
                "Could not download the course: `git clone --depth ...` failed (fatal: unable to "
                "access 'https://github.com/ddpm-course/ddpm-course/': Could not resolve host: "
                "github.com). Check the internet connection"
            ),
        ),
        (
            {"git": FileNotFoundError(2, "No such file or directory")},
            ("Could not download the course: git is not available (No such file or directory)."),
        ),
        (
            {"pip": (1, "ERROR: No matching distribution found for einops>=0.7\n")},
            "Could not install the course: `" + sys.executable + " -m pip ...` failed (ERROR: No matching distribution",
        ),
    ],
    ids=["no-network", "no-git", "pip-fails"],
)
def test_a_failed_step_is_one_clear_line_not_a_traceback(elsewhere, answers, expected):
    with pytest.raises(colab.CourseSetupError) as error:
        colab.setup_course("https://github.com/ddpm-course/ddpm-course", run=FakeRun(**answers))
    message = str(error.value)
    assert message.startswith(expected) and "\n" not in message
    assert error.value._render_traceback_() == [f"\x1b[31m{message}\x1b[0m"]


def test_in_colab_it_names_the_gpu_or_says_how_to_get_one(monkeypatch, capsys):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    colab.setup_course("https://github.com/someone/fork", run=FakeRun())
    assert "Runtime > Change runtime type > Hardware accelerator: GPU" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "Tesla T4")
    colab.report_colab_device()
    assert "GPU: Tesla T4" in capsys.readouterr().out


def test_every_notebook_has_the_set_up_cell_and_badge_for_the_url_in_pyproject():
    url = build.repository_url()
    assert url.startswith("https://github.com/")
    notebooks = [t.path for t in build.targets() if t.path.suffix == ".ipynb"]
    assert len(notebooks) >= 6
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        header, setup = "".join(cells[0]["source"]), "".join(cells[1]["source"])
        relative = path.relative_to(build.REPO_ROOT).as_posix()
        assert colab.colab_badge(url, relative) in header, relative
        assert (
            f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/"
            f"{relative}" in header
        )
        assert cells[1]["cell_type"] == "code" and setup == colab.setup_cell(url), relative
        assert f'REPOSITORY_URL = "{url}"' in setup and setup.rstrip().endswith("setup_course(REPOSITORY_URL)")


def test_the_cell_itself_fails_with_one_line_without_network(monkeypatch, tmp_path):
    """The cell as pasted into the notebooks, run where the course does not import and git cannot connect."""
    cell = colab.setup_cell("https://github.com/ddpm-course/ddpm-course")
    monkeypatch.setattr(colab.importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setattr(subprocess, "run", FakeRun(git=(128, FAILED_CLONE)))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with pytest.raises(RuntimeError, match=r"^Could not download the course: .*Could not resolve host") as error:
        exec(compile(cell, "set-up cell", "exec"), namespace)  # noqa: S102 - running the cell is the point
    assert type(error.value).__name__ == "CourseSetupError" and "\n" not in str(error.value)


def test_the_badge_needs_a_github_url():
    assert "colab.research.google.com/github/a/b/blob/main/part1.ipynb" in colab.colab_badge(
        "https://github.com/a/b.git", "part1.ipynb"
    )
    with pytest.raises(ValueError, match="from GitHub"):
        colab.colab_badge("https://gitlab.com/a/b", "part1.ipynb")


def test_the_url_is_read_without_tomllib_too(monkeypatch):
    """Python 3.10 has no tomllib: the build then finds the one line itself, and must find the same URL."""
    expected = build.repository_url()
    monkeypatch.setitem(sys.modules, "tomllib", None)
    assert build.repository_url() == expected
