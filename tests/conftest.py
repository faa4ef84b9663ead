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


def _part_fixture(part: int):
    @pytest.fixture(scope="session", name=f"part{part}")
    def fixture(request):
        """The module being graded for this part."""
        return _impl(request, part)

    return fixture


part1, part2, part3, part4, part5 = (_part_fixture(part) for part in range(1, 6))


@pytest.fixture(scope="module")
def fashion_data():
    """Skips the test where the real FashionMNIST files are not on this machine (the loader never downloads here)."""
    from utils.datasets.fashion_mnist import load_fashion_mnist

    try:
        load_fashion_mnist("test", download=False)
    except Exception as e:  # noqa: BLE001 - any missing or unreadable file means: no real data on this machine
        pytest.skip(f"FashionMNIST not available: {e}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Show a grader's failure as its message alone: the graders' own stack frames teach nothing."""
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, GraderFailure) and report.failed:
        report.longrepr = str(call.excinfo.value)
    return report
