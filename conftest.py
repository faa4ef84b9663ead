"""Root pytest configuration: the --impl option (declared here so `pytest --impl ...` works from the repository root
as well as on one file), CI mode for the notebooks (utils.IS_CI: small data, few steps, so nbval takes minutes), and
notebooks that stop at their first failing cell, as "Run all" does in Jupyter."""

import os

import pytest

os.environ.setdefault("IS_CI", "1")
# One BLAS thread, set before numpy loads its BLAS: on a CPU shared with other jobs, OpenBLAS's threads spin waiting
# for each other, and a 128 x 128 matrix square root (every FMNIST-FID) takes seconds instead of milliseconds.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _cpus() -> int:
    """The CPUs this process may run on (a container or `taskset` may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Under `pytest -n N` (pytest-xdist) each worker gets its share of the CPUs as torch threads, and so do the notebooks'
# kernels and the programs it starts, which inherit it: N processes of all-CPU torch would oversubscribe the machine.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cpus() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
# nbval's kernels are new processes started in solutions/: put this checkout first on their path, so that they test
# the code under test and not whichever copy of the course is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH")) if p
)


def pytest_addoption(parser):
    parser.addoption(
        "--impl",
        default="exercises",
        help="what to grade: 'exercises' (your exercises/partN.py, the default), 'solutions' (the reference), "
        "a folder, a path to a .py file or a .ipynb notebook anywhere, or partK=PATH (the other parts' tests then "
        "grade the reference); several values separated by commas (see ddpm_course/impl.py)",
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per CPU this process may use (xdist's own count is the machine's physical cores, which
    can be fewer than a virtual machine's CPUs, or more than a container allows)."""
    return _cpus()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under `-n`, a notebook's cells (and a test file's tests) stay together on one worker, in order: each cell
    needs the ones before it, and a module's fixtures are made once. Another --dist that is asked for is kept."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    return LoadScopeScheduling(config, log)


def pytest_configure(config):
    # In a judge of class grading, the submission's worker starts now, while this process imports the graders
    # (graders.launch reads the judge's settings, and imports no torch; elsewhere this does nothing).
    from graders.launch import start_early

    start_early()
    # The solved notebooks (solutions/*.ipynb, in testpaths) run top to bottom under nbval when it is installed,
    # without comparing outputs; where it is not, `pytest tests/test_part1.py` still works.
    if config.pluginmanager.hasplugin("nbval"):
        config.option.nbval_lax = True


# nbval runs every cell of a notebook even after one has failed, so a cell that cannot load its data would be
# followed by a NameError in every cell that uses the data. The first failure is the one to read: skip the rest.
_failed_notebooks: dict[str, str] = {}


def _notebook_of(item) -> str | None:
    return item.parent.nodeid if type(item).__name__ == "IPyNbCell" else None


def pytest_runtest_setup(item):
    notebook = _notebook_of(item)
    if notebook in _failed_notebooks:
        pytest.skip(f"not run: {_failed_notebooks[notebook]} of this notebook failed, and later cells depend on it")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    notebook = _notebook_of(item)
    if notebook is not None and report.failed and notebook not in _failed_notebooks:
        _failed_notebooks[notebook] = item.name.lower()
    return report
