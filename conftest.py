"""Root pytest configuration: the --impl option (declared here so `pytest --impl ...` works from the repository root
as well as on one file), and CI mode for the notebooks (utils.IS_CI: small data, few steps, so nbval takes minutes)."""

import os

os.environ.setdefault("IS_CI", "1")


def pytest_addoption(parser):
    parser.addoption(
        "--impl",
        default="exercises",
        help="what to grade: 'exercises' (your exercises/partN.py, the default), 'solutions' (the reference), "
        "or a path to a .py file or a .ipynb notebook anywhere",
    )


def pytest_configure(config):
    # The solved notebooks (solutions/*.ipynb, in testpaths) run top to bottom under nbval when it is installed,
    # without comparing outputs; where it is not, `pytest tests/test_part1.py` still works.
    if config.pluginmanager.hasplugin("nbval"):
        config.option.nbval_lax = True
