"""Grade a whole class: one table of every student's outcome on every step of one part.

    ddpm-course grade-class 1 submissions/                  # table in grades/part1.csv and grades/part1.json
    ddpm-course grade-class 2 submissions/ --jobs 4 --timeout 600 --out grades/
    ddpm-course grade-class 1 submissions/ -k "linear_schedule or q_eq4"   # some steps only

`submissions/` holds one `.py` or `.ipynb` per student (the student is the file's name), or one folder per student
holding one (if it holds several, the one whose name contains `partN`). Each student is graded by a judge process of
their own (`pytest tests/test_partN.py` with the plugin graders/grade_report.py), so a crash, an endless loop,
`sys.exit()` or megabytes of printing stays on that student's row. The judge never imports the submission: it runs
in a worker inside a sandbox of its own (graders/remote.py, graders/sandbox.py: a read-only copy of the course,
limits, and where the OS allows, a user of its own, no network and the instructor's folders hidden), and answers the
graders' requests with data. Students are graded in parallel, up to the machine's cores.

Every cell of the table is one of: pass, fail, not implemented, timed out, could not load; the score counts the
passes. The JSON file holds the graders' messages as well, and `logs/` the last part of each student's output.
"""

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from graders import REPO_ROOT
from graders.grade_report import MESSAGE_CHARS, NOT_LOADED, OUTCOMES, PASS, TIMED_OUT
from graders.launch import JUDGE_ENV
from graders.sandbox import Containment, Limits, Policy, Sandbox

SUFFIXES = (".py", ".ipynb")
OUTPUT_CAP_BYTES = 64 * 1024  # the end of a student's output that is kept: the summary, and the last messages
DEFAULT_TIMEOUT_S = 900.0
TEMP = Path(
    tempfile.gettempdir()
)  # hidden from a submission but for its own sandbox there  # a whole student; each step also has its own, shorter limit (graders/core.py)


@dataclass
class Submission:
    student: str
    path: Path | None  # None: nothing gradable was found
    problem: str = ""  # why there is no path


@dataclass
class Row:
    student: str
    submission: str
    steps: dict[str, dict[str, str]] = field(default_factory=dict)  # step -> {"outcome": ..., "message": ...}
    note: str = ""
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(result["outcome"] == PASS for result in self.steps.values())


# --------------------------------------------------------------------------------------------------------------------
# Finding the submissions


def find_submissions(folder: Path, part: int) -> list[Submission]:
    """One Submission per student in `folder`, sorted by student."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_file() and entry.suffix in SUFFIXES:
            found.append(Submission(entry.stem, entry))
        elif entry.is_dir():
            found.append(_pick_from_folder(entry, part))
    names = Counter(s.student for s in found)
    for s in found:  # alice.py and alice.ipynb side by side: two rows, told apart by the suffix
        if names[s.student] > 1 and s.path is not None:
            s.student = s.path.name
    return found


def _pick_from_folder(folder: Path, part: int) -> Submission:
    candidates = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
    )
    if len(candidates) > 1:
        candidates = [p for p in candidates if f"part{part}" in p.name] or candidates
    if len(candidates) == 1:
        return Submission(folder.name, candidates[0])
    if not candidates:
        return Submission(folder.name, None, f"no .py or .ipynb file in {folder}")
    return Submission(
        folder.name,
        None,
        f"several candidates in {folder} ({', '.join(p.name for p in candidates)}); keep one, or name it part{part}...",
    )


def steps_of(part: int) -> list[str]:
    """The steps of a part, in the order of its test file (`def test_<step>`)."""
    import ast

    tree = ast.parse((REPO_ROOT / "tests" / f"test_part{part}.py").read_text())
    return [
        node.name.removeprefix("test_")
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


# --------------------------------------------------------------------------------------------------------------------
# Grading one student, in a process of its own


def run_capped(
    command: list[str], timeout: float, cwd: Path, env: dict | None = None, cap: int = OUTPUT_CAP_BYTES
) -> tuple[int | None, str]:
    """Run `command`; return its exit code (None when killed at `timeout` seconds) and the last `cap` bytes of its
    output. The output is read as it comes and only its end is kept, so megabytes of printing cost no memory; the
    process and its children are killed together (they form a session of their own)."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    tail = bytearray()
    dropped = 0

    def drain():
        nonlocal dropped
        while chunk := process.stdout.read1(1 << 16):
            tail.extend(chunk)
            if len(tail) > cap:
                dropped += len(tail) - cap
                del tail[: len(tail) - cap]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
        _kill_session(process)
    reader.join(5)
    text = tail.decode("utf-8", errors="replace")
    if dropped:
        text = f"[... {dropped:,} earlier bytes of output not kept ...]\n" + text
    return code, text


def _kill_session(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):  # already gone, or no process groups (Windows)
        process.kill()
    process.wait()


def grade_one(
    submission: Submission, part: int, timeout: float, select: str | None, logs: Path, number: int = 0,
    policy: Policy | None = None,
) -> Row:  # fmt: skip
    """Grade one student in a contained subprocess (graders.sandbox) and read back the outcome of each step. Without
    a `policy`, the strongest this machine allows, hiding the submission's folder, `logs` and the course."""
    row = Row(submission.student, str(submission.path or ""))
    if submission.path is None:
        row.note = submission.problem
        return row
    start = time.perf_counter()
    if policy is None:
        policy, _ = Policy.for_class(submission.path.parent, logs, Path.home(), REPO_ROOT, TEMP)
    with Sandbox(submission.path, number, policy) as box, tempfile.TemporaryDirectory(prefix="judge-") as private:
        # The judge runs the graders and writes the report; it never imports the submission, which runs in a worker
        # inside the sandbox and answers the judge's requests with data (graders/remote.py).
        report = Path(private) / "report.json"
        worker = {
            "command": box.command([sys.executable, "-m", "graders.remote"]),
            "env": box.environment(),
            "cwd": str(box.home),
            "spec": str(box.submission),
            "part": part,
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(REPO_ROOT / "tests" / f"test_part{part}.py"),
            "--impl",
            str(box.submission),
            "--rootdir",
            str(REPO_ROOT),
            "-c",
            str(REPO_ROOT / "pyproject.toml"),
            "-q",
            "--no-header",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:nbval",  # its import (nbformat's schema checks) costs seconds a student, and no notebook runs here
            "-p",
            "graders.grade_report",
            "--grade-report",
            str(report),
        ]
        if select:
            command += ["-k", select]
        environment = {**os.environ, JUDGE_ENV: json.dumps(worker)}
        code, output = run_capped(command, timeout, Path(private), environment)
        if report.is_file():  # messages name the student's file where they named its copy in the sandbox
            row.steps = _read_report(report)
            for result in row.steps.values():
                result["message"] = result["message"].replace(str(box.submission), str(submission.path))
        output = output.replace(str(box.submission), str(submission.path))
        if code is None:
            row.note = f"stopped after {timeout:g} s, the time limit of a whole submission"
        elif not report.is_file():
            last = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
            row.note = f"the grading process ended without a report (exit code {code}); last output: {last[0][:200]}"
    row.seconds = time.perf_counter() - start
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{_safe(row.student)}.txt").write_text(output)
    return row


def _read_report(path: Path) -> dict[str, dict[str, str]]:
    """The grading process's report, kept only as far as it has the expected shape (it was written by a process
    that ran the submission)."""
    try:
        report = json.loads(path.read_text()[: 1 << 20])
    except (ValueError, OSError):
        return {}
    if not isinstance(report, dict):
        return {}
    return {
        str(step): {"outcome": result["outcome"], "message": str(result.get("message", ""))[:MESSAGE_CHARS]}
        for step, result in report.items()
        if isinstance(result, dict) and result.get("outcome") in OUTCOMES
    }


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def complete(row: Row, steps: list[str]) -> None:
    """Give every step a cell: one the process never reported is 'timed out' if the whole submission ran out of
    time, else 'could not load' (the process died before grading it)."""
    missing = TIMED_OUT if row.note.startswith("stopped after") else NOT_LOADED
    for step in steps:
        row.steps.setdefault(step, {"outcome": missing, "message": row.note})


# --------------------------------------------------------------------------------------------------------------------
# The whole class


def grade_class(
    part: int,
    folder: Path,
    out: Path,
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    select: str | None = None,
    progress: bool = True,
    limits: Limits | None = None,
) -> tuple[list[Row], Containment]:
    """Grade every submission in `folder`, write `out/partN.csv` and `out/partN.json`, and return the rows and how
    far the submissions could be contained on this machine."""
    submissions = find_submissions(folder, part)
    if not submissions:
        raise FileNotFoundError(f"no submissions in {folder}: expected .py or .ipynb files, or one folder per student")
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(submissions)))
    out.mkdir(parents=True, exist_ok=True)
    policy, containment = Policy.for_class(folder, out, Path.home(), REPO_ROOT, TEMP, limits=limits)
    rows = []
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,
        tqdm(total=len(submissions), desc=f"grading Part {part}", unit="student", disable=not progress) as bar,
    ):
        logs = out / "logs" / f"part{part}"
        futures = [
            pool.submit(grade_one, s, part, timeout, select, logs, number, policy)
            for number, s in enumerate(submissions)
        ]
        for future in as_completed(futures):
            rows.append(future.result())
            bar.update(1)
    rows.sort(key=lambda row: row.student)
    reported = {step for row in rows for step in row.steps}
    steps = [step for step in steps_of(part) if step in reported] or steps_of(part)
    for row in rows:
        complete(row, steps)
    write_tables(rows, steps, part, out, containment)
    return rows, containment


def write_tables(
    rows: list[Row], steps: list[str], part: int, out: Path, containment: Containment | None = None
) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"part{part}.csv", out / f"part{part}.json"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *steps, "score", "out_of", "note", "submission"])
        for row in rows:
            writer.writerow(
                [
                    row.student,
                    *(row.steps[s]["outcome"] for s in steps),
                    row.score,
                    len(steps),
                    row.note,
                    row.submission,
                ]
            )
    json_path.write_text(
        json.dumps(
            {
                "part": part,
                "steps": steps,
                "containment": asdict(containment) if containment is not None else None,
                "outcomes": list(OUTCOMES),
                "students": [
                    {
                        "student": row.student,
                        "submission": row.submission,
                        "score": row.score,
                        "out_of": len(steps),
                        "note": row.note,
                        "seconds": round(row.seconds, 1),
                        "steps": {s: row.steps[s] for s in steps},
                    }
                    for row in rows
                ],
            },
            indent=1,
        )
    )
    return csv_path, json_path


def summary(rows: list[Row], part: int, out: Path) -> str:
    steps = list(rows[0].steps) if rows else []
    width = max([len(s) for s in steps] + [4])
    lines = [f"Part {part}: {len(rows)} students, {len(steps)} steps"]
    lines.append(f"  {'step':<{width}}  " + "  ".join(f"{o:>15}" for o in OUTCOMES))
    for step in steps:
        counts = Counter(row.steps[step]["outcome"] for row in rows)
        lines.append(f"  {step:<{width}}  " + "  ".join(f"{counts[o]:>15}" for o in OUTCOMES))
    scores = Counter(row.score for row in rows)
    lines.append(
        "  scores: " + ", ".join(f"{score}/{len(steps)}: {n}" for score, n in sorted(scores.items(), reverse=True))
    )
    for row in rows:
        if row.note:
            lines.append(f"  {row.student}: {row.note}")
    lines.append(
        f"wrote {out / f'part{part}.csv'}, {out / f'part{part}.json'} and the output of each student in "
        f"{out / 'logs' / f'part{part}'}"
    )
    return "\n".join(lines)


def grade_file(part: int, path: str, timeout: float = DEFAULT_TIMEOUT_S) -> int:
    """`ddpm-course grade PART FILE --sandbox`: one submission graded as in a class, one line per step; 0 if all
    pass."""
    file = Path(path)
    if not file.is_file() or file.suffix not in SUFFIXES:
        print(f"could not load: --sandbox grades one .py or .ipynb file; {path} is not one")
        return 2
    with tempfile.TemporaryDirectory() as logs:
        row = grade_one(Submission(file.stem, file), part, timeout, None, Path(logs))
    steps = steps_of(part)
    complete(row, steps)
    for step in steps:
        result = row.steps[step]
        mark = "\N{CHECK MARK}" if result["outcome"] == PASS else "\N{BALLOT X}"
        print(f"{mark} {step}: {result['outcome']}" + (f"\n  {result['message']}" if result["message"] else ""))
    print(f"\nPart {part}, {path} (contained): {row.score} of {len(steps)} steps pass")
    return 0 if row.score == len(steps) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ddpm-course grade-class", description=__doc__.split("\n\n")[0])
    parser.add_argument("part", type=int, choices=[1, 2, 3, 4, 5])
    parser.add_argument("folder", type=Path, help="one .py or .ipynb per student, or one folder per student")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where the tables go (default: grades/)")
    parser.add_argument("--jobs", type=int, default=None, help="students graded at once (default: the CPU cores)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds for a whole submission before it is stopped (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("-k", dest="select", default=None, help="grade only the steps this pytest -k expression keeps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=Limits.memory_gb,
        help=f"address space each submission may use (default {Limits.memory_gb:g})",
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    limits = Limits(memory_gb=args.memory_gb)
    rows, containment = grade_class(
        args.part, args.folder, args.out, args.jobs, args.timeout, args.select, not args.no_progress, limits
    )
    print(summary(rows, args.part, args.out))
    print(containment.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
