"""A pytest plugin for class grading: writes each grader step's outcome to a JSON file.

    pytest tests/test_part1.py --impl alice.py -p graders.grade_report --grade-report alice.json

`graders.grade_class` runs one such pytest per student. The file maps each step (a test `test_<step>`) to
its outcome, one of OUTCOMES, and the first lines of the grader's message, so the class table keeps the course's own
failure messages.
"""

import json
from pathlib import Path

import pytest

PASS, FAIL, NOT_IMPLEMENTED, TIMED_OUT, NOT_LOADED = "pass", "fail", "not implemented", "timed out", "could not load"
OUTCOMES = (PASS, FAIL, NOT_IMPLEMENTED, TIMED_OUT, NOT_LOADED)
MESSAGE_CHARS = 600  # enough for a grader's what / expected / got / likely mistake; a runaway message is cut

_results: dict[str, dict[str, str]] = {}


def pytest_addoption(parser):
    parser.addoption("--grade-report", default=None, help="write each step's outcome to this JSON file")


def outcome_of(report, excinfo) -> str:
    """The class table's word for one test's report, from the exception that ended it (if any)."""
    from graders.core import NotImplementedYet, TimedOut  # the graders are loaded by the tests anyway

    if report.passed:
        return PASS
    if report.when == "setup":  # the --impl fixture: the file does not import, exits, or lacks what it needs
        return NOT_LOADED
    if excinfo is not None and excinfo.errisinstance(TimedOut):
        return TIMED_OUT
    if excinfo is not None and excinfo.errisinstance(NotImplementedYet):
        return NOT_IMPLEMENTED
    return FAIL


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    step = item.name.removeprefix("test_")
    finished = report.failed or (report.when == "call" and report.passed)
    if finished and (step not in _results or _results[step]["outcome"] == PASS):  # a test's first failure counts
        message = "" if report.passed else _message(report, call.excinfo)
        _results[step] = {"outcome": outcome_of(report, call.excinfo), "message": message}
    return report


def _message(report, excinfo) -> str:
    if excinfo is not None and excinfo.typename in ("Failed", "GraderFailure", "NotImplementedYet", "TimedOut"):
        text = str(excinfo.value)
    elif excinfo is not None:
        text = f"{excinfo.typename}: {excinfo.value}"
    else:
        text = str(report.longrepr)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def pytest_sessionfinish(session):
    path = session.config.getoption("--grade-report")
    from graders.remote import stop_all

    stop_all()  # in a judge: no worker is left running while the report is written
    if path:
        Path(path).write_text(json.dumps(_results, indent=1))
