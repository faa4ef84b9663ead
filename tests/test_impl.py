"""Naming an implementation (ddpm_course.impl): one grammar for every program and grader, one line per part saying whose
code runs, and one line, never a traceback, for a part that cannot be used."""

import os
import shutil
import subprocess
import sys

import pytest

from ddpm_course.cli import main as cli
from ddpm_course.impl import ImplError, choose_sources, describe, load_parts
from graders import REPO_ROOT

STUDENT = REPO_ROOT / "tests" / "students" / "simple_part1.py"


def _specs(sources):
    return {part: (source.spec, source.whose) for part, source in sources.items()}


def test_one_part_from_a_file_the_rest_from_the_reference(tmp_path):
    notebook = tmp_path / "my_part1.ipynb"
    shutil.copy(REPO_ROOT / "solutions" / "part1_gradients.ipynb", notebook)
    for values in ([f"part1={notebook}"], [str(notebook)]):  # named, or the part its file name says
        sources = choose_sources(values, (1, 2, 3))
        assert _specs(sources) == {
            1: (str(notebook), "yours"),
            2: ("solutions", "the reference"),
            3: ("solutions", "the reference"),
        }
    assert describe(sources).splitlines() == [
        f"Part 1: {notebook} (yours)",
        "Part 2: solutions/part2.py (the reference)",
        "Part 3: solutions/part3.py (the reference)",
    ]


def test_all_parts_from_one_name_and_a_default():
    assert _specs(choose_sources([], (1, 3, 4))) == {p: ("exercises", "yours") for p in (1, 3, 4)}
    assert _specs(choose_sources(None, (1,), default="solutions")) == {1: ("solutions", "the reference")}
    mixed = choose_sources(["exercises", f"part1={STUDENT}"], (1, 2))
    assert _specs(mixed) == {1: (str(STUDENT), "yours"), 2: ("exercises", "yours")}


def test_a_folder_gives_the_parts_it_holds(tmp_path):
    shutil.copy(STUDENT, tmp_path / "part1.py")
    shutil.copy(REPO_ROOT / "solutions" / "part2_unet.ipynb", tmp_path / "part2_unet.ipynb")
    sources = choose_sources([str(tmp_path)], (1, 2, 3))
    assert sources[1].spec == str(tmp_path / "part1.py") and sources[2].spec == str(tmp_path / "part2_unet.ipynb")
    assert sources[3].spec == "solutions" and "has no part3.py" in str(sources[3])


@pytest.mark.parametrize(
    "values, parts, message",
    [
        (["part2=solutions"], (1, 3, 4), "this run uses Parts 1, 3, 4, not Part 2"),
        ([str(STUDENT.parent / "missing.py")], (1,), "no such file or folder"),
        (["exercises", "solutions"], (1, 2), "names all parts twice"),
        ([str(REPO_ROOT / "conftest.py")], (1, 2), "which part does it hold\\? Its name does not say"),
        ([str(REPO_ROOT / "solutions" / "part2.py")], (1, 3, 4), "Its name says Part 2, which this run does not use"),
        ([str(REPO_ROOT / "utils")], (1, 2), "holds none of the parts"),
    ],
)
def test_a_value_that_cannot_be_used_is_one_line(values, parts, message):
    with pytest.raises(ImplError, match=message) as error:
        choose_sources(values, parts)
    assert "\n" not in str(error.value)


def test_an_untouched_stub_is_named_before_the_run(capsys):
    with pytest.raises(ImplError, match=r"Part 1 \(exercises/part1.py, line \d+\): `linear_schedule` is still"):
        load_parts("exercises", {1: ["linear_schedule"]})
    with pytest.raises(ImplError, match="`fmnist_fid` calls `feature_statistics`, which is still the untouched stub"):
        load_parts("exercises", {3: ["fmnist_fid"]})
    with pytest.raises(ImplError, match=r"part1_gradients.ipynb, code cell \d+, line \d+\): `sample`"):
        load_parts(str(REPO_ROOT / "part1_gradients.ipynb"), {1: ["sample"]})
    assert "Part 1: exercises/part1.py (yours)" in capsys.readouterr().out


def test_a_file_that_does_not_load_is_one_line_at_its_own_line(tmp_path):
    broken = tmp_path / "part1.py"
    broken.write_text("import torch\n\nx = 1 / 0\n")
    with pytest.raises(
        ImplError, match=r"could not load it: ZeroDivisionError: division by zero \(at part1.py, line 3\)"
    ):
        load_parts(str(broken), {1: []}, show=None)


def test_the_command_line_stops_with_one_line(capsys):
    assert cli(["run", "part3", "--impl", "part1=part1_gradients.ipynb"]) == 2
    captured = capsys.readouterr()
    assert "Part 1: part1_gradients.ipynb (yours)\nPart 2: solutions/part2.py (the reference)" in captured.out
    assert captured.err.count("\n") == 1 and captured.err.startswith("stopped: Part 1 (part1_gradients.ipynb")


@pytest.mark.parametrize(
    "argv, usage",
    [
        (["--help"], "usage: ddpm-course [-h] COMMAND"),
        (["run", "--help"], "usage: ddpm-course run [-h] {part1,part3,part4,part5}"),
        (["reference", "--help"], "usage: ddpm-course reference [-h]"),
        (["run", "part1", "--help"], "usage: ddpm-course run part1 "),
        (["run", "part3", "--help"], "usage: ddpm-course run part3 "),
        (["reference", "part4", "--help"], "usage: ddpm-course reference part4 "),
        (["reference", "part5", "--help"], "usage: ddpm-course reference part5 "),
        (["grade", "--help"], "usage: ddpm-course grade [-h]"),
        (["grade-class", "--help"], "usage: ddpm-course grade-class [-h]"),
        (["build", "--help"], "usage: ddpm-course build [-h]"),
        (["bench", "--help"], "usage: ddpm-course bench [-h]"),
    ],
)
def test_help_at_every_level_names_the_command(argv, usage, capsys):
    with pytest.raises(SystemExit) as done:
        cli(argv)
    assert done.value.code == 0 and capsys.readouterr().out.startswith(usage)


def test_grade_takes_any_impl_value(capsys):
    assert cli(["grade", "1", f"part1={REPO_ROOT / 'solutions' / 'part1.py'}"]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith(f"Part 1: {REPO_ROOT / 'solutions' / 'part1.py'} (yours)")
        and "11 of 11 steps pass" in printed
    )


def test_grade_piped_into_a_file_on_windows_prints_what_the_encoding_can():
    """Piped or redirected on Windows, stdout encodes cp1252, which has no ✓ or ✗: the marks become "?", the run goes on."""
    env = {**os.environ, "PYTHONIOENCODING": "cp1252", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "ddpm_course.cli", "grade", "3", "solutions"],
        capture_output=True,
        env=env,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr.decode("cp1252", "replace")[-2000:]
    assert b"? inception_score: all checks passed" in done.stdout and b"4 of 4 steps pass" in done.stdout


def test_in_colab_a_missing_notebook_says_how_to_bring_it_over(monkeypatch):
    """In Colab the student's notebooks live in Google Drive: part1=part1_gradients.ipynb finds nothing on the disk."""
    from ddpm_course import impl

    monkeypatch.setattr(impl, "in_colab", lambda: True)
    with pytest.raises(ImplError, match=r"no such file or folder.*In Colab.*File > Download > \.ipynb"):
        choose_sources(["part1=/nowhere/part1_gradients.ipynb"], [1])
