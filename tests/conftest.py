"""pytest wiring for the graders: one fixture per part (the module that --impl names) and short failure reports."""

import pytest
import torch

from ddpm_course.impl import REFERENCE, ImplError, choose_sources, load_part
from graders.core import GraderFailure
from graders.remote import judged_module


def _impl(request, part: int):
    """Part `part` from wherever --impl says: a value naming another part (part1=FILE) leaves this one the reference."""
    spec = request.config.getoption("--impl")
    try:
        named = [v for v in spec.split(",") if v.partition("=")[0] == f"part{part}" or "=" not in v]
        source = choose_sources(named, [part], default="solutions")[part]
        # In class grading the submission runs in a worker of its own, never in this process (graders/remote.py).
        judged = judged_module(source.spec, part) if source.spec != REFERENCE else None
        return judged if judged is not None else load_part(source)
    except (ImplError, ImportError) as e:  # a file that does not import is the student's first thing to fix
        pytest.fail(f"could not load --impl {spec}: {e}", pytrace=False)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run as fast on one thread, and much faster than on two when other jobs share the CPU. A module of
    such tests asks for it with `pytestmark = pytest.mark.usefixtures("one_thread")`; the thread count comes back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def part1(request):
    """The Part 1 module being graded."""
    return _impl(request, 1)


@pytest.fixture(scope="session")
def part2(request):
    """The Part 2 module being graded."""
    return _impl(request, 2)


@pytest.fixture(scope="session")
def part3(request):
    """The Part 3 module being graded."""
    return _impl(request, 3)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Show a grader's failure as its message alone: the graders' own stack frames teach nothing."""
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, GraderFailure) and report.failed:
        report.longrepr = str(call.excinfo.value)
    return report


@pytest.fixture(scope="session")
def part4(request):
    """The Part 4 module being graded."""
    return _impl(request, 4)


@pytest.fixture(scope="session")
def part5(request):
    """The Part 5 module being graded."""
    return _impl(request, 5)
