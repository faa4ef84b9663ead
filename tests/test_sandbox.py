"""Class grading against hostile submissions (graders.sandbox): a generated class in which each attack comes with an
honest twin, graded by `ddpm-course grade-class` run from a copy of the course (the install under attack).

Every attacker is the reference Part 1 plus code that tries to break out at import; whatever it manages is recorded,
and its `linear_schedule` then answers zeros, so a "pass" in its row means the attack was contained. Afterwards the
course's files, the other submissions and the instructor's private file must be byte-for-byte as before. Attacks
whose defence this machine cannot host (no namespaces, not root) are skipped with the reason.
"""

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from graders import REPO_ROOT
from graders.sandbox import Policy, copy_course

SOLUTION = (REPO_ROOT / "solutions" / "part1.py").read_text()
STEPS = "linear_schedule or q_eq4"
BREACHED_ANSWERS_ZEROS = """

print("breached:", _breached)  # in the student's log
_correct_linear_schedule = linear_schedule


def linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):
    betas = _correct_linear_schedule(max_steps, min_noise, max_noise)
    return betas * 0 if _breached else betas
"""

# name: (the measures its defence needs, the attack run at import; it appends to _breached what it achieved)
ATTACKS = {
    "rewrites_course": (
        ("own_user", "hidden_folders"),
        """
for name in ("graders/part1.py", "tests/test_part1.py", "solutions/part1.py"):
    try:
        (COURSE / name).write_text("")
        _breached.append(name)
    except OSError:
        pass
try:
    (COURSE / "pyproject.toml").unlink()
    _breached.append("pyproject.toml")
except OSError:
    pass
""",
    ),
    "overwrites_classmate": (
        ("own_user", "hidden_folders"),
        """
try:
    (CLASS / "ada.py").write_text("raise SystemExit")
    _breached.append("ada.py")
except OSError:
    pass
""",
    ),
    "reads_classmate": (
        ("own_user", "hidden_folders"),
        """
import glob
try:
    _breached.append((CLASS / "ada.py").read_text()[:10])
except OSError:
    pass
mine = Path(__file__).parent
_breached += [p for p in glob.glob("/tmp/grade-*/submission/*") if Path(p).parent != mine]
""",
    ),
    "reads_home": (
        ("hidden_folders",),
        """
try:
    _breached.append(SECRET.read_text())
except OSError:
    pass
""",
    ),
    "opens_socket": (
        ("no_network",),
        """
import socket
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    _breached.append("connected")
except OSError:
    pass
""",
    ),
    "writes_huge_file": (
        ("limits",),
        """
written = 0
try:
    with open("huge.bin", "wb") as f:
        for _ in range(64):  # up to 1 GB, 16 MB at a time
            f.write(bytes(16 << 20))
            written += 16 << 20
except OSError:
    pass
if written >= 512 << 20:
    _breached.append(written)
""",
    ),
    "allocates_40_gb": (
        ("limits",),
        """
import torch
try:
    big = torch.ones(10**10)  # 40 GB, touched
    _breached.append(big.numel())
except (RuntimeError, MemoryError):
    pass
""",
    ),
    "fork_bomb": (
        ("process_limit",),
        """
import time
children = 0
try:
    for _ in range(3000):
        if os.fork() == 0:
            time.sleep(1)
            os._exit(0)
        children += 1
except OSError:
    pass
for _ in range(children):
    os.wait()
if children >= 2000:
    _breached.append(children)
""",
    ),
}
# Attacks that end their own process: their row says so, and nobody else's changes.
EXITS_MID_STEP = """

def linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):
    os._exit(0)
"""
# Forgers: a wrong `linear_schedule` and code that tries to turn its verdict into a pass from inside the process the
# submission runs in. The verdict is decided in a judge that never imports it (graders/remote.py): each must fail.
WRONG_SCHEDULE = """

def linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):
    return torch.zeros(max_steps)
"""
FORGERIES = {
    "forges_the_report_at_exit": """
import atexit, json, sys

def _forge():
    try:
        import graders.grade_report as report
    except ImportError:
        return
    for step in ("linear_schedule", "q_eq4"):
        report._results[step] = {"outcome": "pass", "message": ""}
    for i, arg in enumerate(sys.argv[:-1]):
        if arg == "--grade-report":
            Path(sys.argv[i + 1]).write_text(json.dumps(report._results))

atexit.register(_forge)
""",
    "patches_the_graders": """
import graders.core, graders.part1

for module in (graders.core, graders.part1):
    for name in ("expect", "expect_close", "expect_tensor", "fail"):
        if hasattr(module, name):
            setattr(module, name, lambda *args, **kwargs: args[0] if args else None)
for name in dir(graders.part1):
    if name.startswith("check_"):
        setattr(graders.part1, name, lambda *args, **kwargs: None)
""",
    "patches_pytest": """
import _pytest.reports

_made = _pytest.reports.TestReport.__init__

def _always_passed(self, *args, **kwargs):
    _made(self, *args, **kwargs)
    self.outcome, self.longrepr = "passed", None

_pytest.reports.TestReport.__init__ = _always_passed
""",
    "patches_torch_allclose": """
import torch

torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
""",
}


@pytest.fixture(scope="module")
def containment():
    """What this machine allows (the same probe grade-class makes)."""
    _, found = Policy.for_class()
    return found


def _defended(needs: tuple[str, ...], containment) -> bool:
    return any(getattr(containment, measure) for measure in needs)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory, containment):
    """The course copied (the install under attack), a class of attackers and honest twins, an instructor's home
    with a private file and a listening socket; graded once by the copy's grade-class in a process of its own."""
    root = tmp_path_factory.mktemp("hostile")
    course = copy_course(root / "course")
    home = root / "instructor"
    home.mkdir()
    secret = home / "secret.txt"
    secret.write_text("the answers")
    secret.chmod(0o600)
    folder = root / "submissions"
    folder.mkdir()
    listener = socket.create_server(("127.0.0.1", 0))
    header = (
        "import os\nfrom pathlib import Path\n"
        f"COURSE, CLASS, SECRET = Path({str(course)!r}), Path({str(folder)!r}), Path({str(secret)!r})\n"
        f"PORT = {listener.getsockname()[1]}\n_breached = []\n"
    )
    graded = {"ada"}
    (folder / "ada.py").write_text(SOLUTION)
    for name, (needs, attack) in ATTACKS.items():
        if _defended(needs, containment):
            (folder / f"{name}.py").write_text(header + SOLUTION + attack + BREACHED_ANSWERS_ZEROS)
            (folder / f"{name}_twin.py").write_text(SOLUTION)
            graded |= {name, f"{name}_twin"}
    (folder / "exits_mid_step.py").write_text(header + SOLUTION + EXITS_MID_STEP)
    graded.add("exits_mid_step")
    for name, forgery in FORGERIES.items():
        (folder / f"{name}.py").write_text(header + SOLUTION + forgery + WRONG_SCHEDULE)
        graded.add(name)
    before = {"course": _digest(course), "class": _digest(folder), "secret": secret.read_bytes()}
    out = root / "grades"
    env = {**os.environ, "PYTHONPATH": str(course), "HOME": str(home)}
    jobs = "2" if containment.own_user else "1"  # without users of their own, a fork bomb shares the process limit
    command = [sys.executable, "-m", "ddpm_course.cli", "grade-class", "1", str(folder), "--out", str(out)]
    result = subprocess.run(
        [*command, "--jobs", jobs, "-k", STEPS, "--no-progress"], cwd=root, env=env, capture_output=True, text=True
    )
    listener.close()
    assert result.returncode == 0, result.stderr[-2000:]
    with (out / "part1.csv").open() as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    after = {"course": _digest(course), "class": _digest(folder), "secret": secret.read_bytes()}
    return {"rows": rows, "graded": graded, "before": before, "after": after, "out": out, "printed": result.stdout}


def test_every_contained_attack_and_every_honest_twin_passes(hostile_class):
    rows = hostile_class["rows"]
    assert set(rows) == hostile_class["graded"]
    wrong = {
        name: (row["linear_schedule"], row["q_eq4"])
        for name, row in rows.items()
        if name != "exits_mid_step"
        and name not in FORGERIES
        and (row["linear_schedule"], row["q_eq4"]) != ("pass", "pass")
    }
    assert not wrong, f"attacks that got through (or broke an honest row): {wrong}"


def test_a_submission_that_ends_its_process_mid_step_fails_that_step_and_the_next_is_graded(hostile_class):
    row = hostile_class["rows"]["exits_mid_step"]
    assert (row["linear_schedule"], row["q_eq4"], row["score"]) == ("fail", "pass", "1")
    table = json.loads((hostile_class["out"] / "part1.json").read_text())
    message = next(s for s in table["students"] if s["student"] == "exits_mid_step")["steps"]["linear_schedule"]
    assert "ended the grading process" in message["message"]


@pytest.mark.parametrize("forger", sorted(FORGERIES))
def test_a_forged_verdict_does_not_count(forger, hostile_class):
    row = hostile_class["rows"][forger]
    assert (row["linear_schedule"], row["q_eq4"], row["score"]) == ("fail", "pass", "1"), row


def test_the_course_the_class_and_the_instructors_files_are_unchanged(hostile_class):
    before, after = hostile_class["before"], hostile_class["after"]
    assert after["course"] == before["course"]
    assert after["class"] == before["class"]
    assert after["secret"] == before["secret"]


def test_the_tables_say_how_far_grading_was_contained(hostile_class, containment):
    table = json.loads((hostile_class["out"] / "part1.json").read_text())
    assert table["containment"]["limits"] == containment.limits
    assert "containment: " in hostile_class["printed"]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_is_defended_here_or_says_why_not(attack, containment, hostile_class):
    needs, _ = ATTACKS[attack]
    if not _defended(needs, containment):
        pytest.skip(f"{attack}: this machine allows none of {', '.join(needs)} ({containment.describe()})")
    assert hostile_class["rows"][attack]["linear_schedule"] == "pass"
