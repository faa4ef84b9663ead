"""Part 3's steps, one test each: `pytest tests/test_part3.py` grades your exercises/part3.py (--impl for others)."""

import graders.part3 as grader
from graders.core import implementation_of


def test_feature_statistics(part3):
    grader.check_feature_statistics(implementation_of(part3, "feature_statistics"))


def test_frechet_distance(part3):
    grader.check_frechet_distance(implementation_of(part3, "frechet_distance"))


def test_kernel_inception_distance(part3):
    grader.check_kernel_inception_distance(implementation_of(part3, "kernel_inception_distance"))


def test_inception_score(part3):
    grader.check_inception_score(implementation_of(part3, "inception_score"))
