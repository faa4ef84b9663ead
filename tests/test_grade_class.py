"""Class grading (`ddpm-course grade-class`): a generated class with a correct submission, a partly done one, and
each way a submission can go wrong, graded on two cheap Part 1 steps; and the process plumbing on its own."""

import csv
import json
import sys

import pytest

from ddpm_course.cli import main as cli_main
from graders import grade_class as gc

SOLUTION = (gc.REPO_ROOT / "solutions" / "part1.py").read_text()
STUBS = (gc.REPO_ROOT / "exercises" / "part1.py").read_text()
LINEAR_SCHEDULE = """

def linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):
    import torch
    return torch.linspace(min_noise, max_noise, max_steps)
"""
STEPS = "linear_schedule or q_eq4"


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Six students, graded once through the command line, in parallel, with step limits scaled down to 3 s."""
    root = tmp_path_factory.mktemp("class")
    folder = root / "submissions"
    folder.mkdir()
    (folder / "ada.py").write_text(SOLUTION)  # correct
    (folder / "ben").mkdir()  # partly done, in a folder of their own beside their notes
    (folder / "ben" / "part1.py").write_text(STUBS + LINEAR_SCHEDULE)
    (folder / "ben" / "notes.txt").write_text("not graded")
    (folder / "cem.py").write_text("def linear_schedule(max_steps:\n    pass\n")  # a syntax error
    (folder / "dan.py").write_text("import numpyy\n" + SOLUTION)  # a missing import
    (folder / "eve.py").write_text("import sys\nsys.exit('bye')\n" + SOLUTION)  # exits at import
    (folder / "fay.py").write_text(
        SOLUTION + "\n\ndef linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):\n"
        "    print('x' * 2_000_000)\n    while True:\n        pass\n"
    )  # loud, then endless
    out = root / "grades"
    mp = pytest.MonkeyPatch()
    mp.setenv("DDPM_TIME_LIMIT_SCALE", "0.1")  # 30 s steps become 3 s: fay's endless loop ends soon
    try:
        code = cli_main(
            ["grade-class", "1", str(folder), "--out", str(out), "--jobs", "2", "-k", STEPS, "--no-progress"]
        )
    finally:
        mp.undo()
    assert code == 0
    return out


def test_the_table_has_one_row_per_student_and_one_column_per_step(graded_class):
    with (graded_class / "part1.csv").open() as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    expected = {
        "ada": ("pass", "pass", "2"),
        "ben": ("pass", "not implemented", "1"),
        "cem": ("could not load", "could not load", "0"),
        "dan": ("could not load", "could not load", "0"),
        "eve": ("could not load", "could not load", "0"),
        "fay": ("timed out", "pass", "1"),
    }
    assert {name: (r["linear_schedule"], r["q_eq4"], r["score"]) for name, r in rows.items()} == expected
    assert all(r["out_of"] == "2" for r in rows.values())


def test_the_json_keeps_the_graders_messages(graded_class):
    table = json.loads((graded_class / "part1.json").read_text())
    assert table["steps"] == ["linear_schedule", "q_eq4"]
    students = {s["student"]: s for s in table["students"]}
    assert "SyntaxError" in students["cem"]["steps"]["q_eq4"]["message"]
    assert "No module named 'numpyy'" in students["dan"]["steps"]["linear_schedule"]["message"]
    assert "bye" in students["eve"]["steps"]["linear_schedule"]["message"]
    assert "not implemented yet" in students["ben"]["steps"]["q_eq4"]["message"]
    assert "stopped after 3 s" in students["fay"]["steps"]["linear_schedule"]["message"]


def test_a_loud_submission_leaves_a_capped_log(graded_class):
    logs = graded_class / "logs" / "part1"
    assert sorted(p.stem for p in logs.iterdir()) == ["ada", "ben", "cem", "dan", "eve", "fay"]
    assert all(p.stat().st_size < gc.OUTPUT_CAP_BYTES + 200 for p in logs.iterdir())


def test_output_is_capped_and_a_hung_process_is_killed(tmp_path):
    loud_then_stuck = "import time\nprint('x' * 3_000_000, flush=True)\nprint('the end', flush=True)\ntime.sleep(600)"
    code, output = gc.run_capped([sys.executable, "-c", loud_then_stuck], timeout=3, cwd=tmp_path, cap=1000)
    assert code is None and "the end" in output and len(output) < 1100
    assert output.startswith("[... ") and "earlier bytes of output not kept" in output


def test_a_submission_that_hangs_at_import_times_out_on_every_step(tmp_path):
    (tmp_path / "hangs.py").write_text("while True:\n    pass\n")
    (submission,) = gc.find_submissions(tmp_path, 1)
    row = gc.grade_one(submission, 1, timeout=2, select=None, logs=tmp_path / "logs")
    gc.complete(row, gc.steps_of(1))
    assert row.note == "stopped after 2 s, the time limit of a whole submission"
    assert (
        {r["outcome"] for r in row.steps.values()} == {"timed out"}
        and len(row.steps) == len(gc.steps_of(1))
        and row.score == 0
    )


def test_finding_submissions(tmp_path):
    (tmp_path / "zoe.ipynb").write_text("{}")
    (tmp_path / "amy.py").write_text("")
    (tmp_path / "amy.ipynb").write_text("{}")
    (tmp_path / "kim").mkdir()
    (tmp_path / "kim" / "part1_gradients.ipynb").write_text("{}")
    (tmp_path / "kim" / "part2_unet.ipynb").write_text("{}")
    (tmp_path / "lee").mkdir()
    (tmp_path / "lee" / "a.py").write_text("")
    (tmp_path / "lee" / "b.py").write_text("")
    (tmp_path / "max").mkdir()
    (tmp_path / ".hidden.py").write_text("")
    found = {s.student: s for s in gc.find_submissions(tmp_path, 1)}
    assert sorted(found) == ["amy.ipynb", "amy.py", "kim", "lee", "max", "zoe"]
    assert found["kim"].path.name == "part1_gradients.ipynb"
    assert found["lee"].path is None and "several candidates" in found["lee"].problem
    assert found["max"].path is None and "no .py or .ipynb" in found["max"].problem
    row = gc.grade_one(found["max"], 1, timeout=5, select=None, logs=tmp_path / "logs")
    gc.complete(row, ["linear_schedule"])
    assert row.steps["linear_schedule"]["outcome"] == "could not load" and "no .py" in row.note


def test_grade_sandbox_grades_one_file_as_in_a_class(tmp_path, capsys):
    path = tmp_path / "ben_part1.py"
    path.write_text(STUBS + LINEAR_SCHEDULE)
    assert cli_main(["grade", "1", str(path), "--sandbox"]) == 1
    printed = capsys.readouterr().out
    assert "\N{CHECK MARK} linear_schedule: pass" in printed and "\N{BALLOT X} q_eq4: not implemented" in printed
    assert f"Part 1, {path} (contained): 1 of 11 steps pass" in printed and "/grade-" not in printed
