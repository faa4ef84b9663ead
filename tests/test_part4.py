"""Part 4, one test per exercise step. `pytest tests/test_part4.py` grades exercises/part4.py; add
`--impl solutions` for the reference, or `--impl PATH` for any .py file or notebook; `-k ddim_step` runs one step."""

import graders.part4 as grader
from graders.core import implementation_of


def test_cosine_schedule(part4):
    grader.check_cosine_schedule(implementation_of(part4, "cosine_schedule"))


def test_predict_x0(part4):
    grader.check_predict_x0(implementation_of(part4, "predict_x0"))


def test_ddim_step(part4):
    grader.check_ddim_step(implementation_of(part4, "ddim_step"))


def test_ddim_sample(part4):
    grader.check_ddim_sample(implementation_of(part4, "ddim_sample"))


def test_drop_labels(part4):
    grader.check_drop_labels(implementation_of(part4, "drop_labels"))


def test_conditional_unet(part4):
    grader.check_conditional_unet(implementation_of(part4, "ConditionalUnet"))


def test_conditional_loss(part4):
    grader.check_conditional_loss(implementation_of(part4, "conditional_loss"))


def test_guided_eps(part4):
    grader.check_guided_eps(implementation_of(part4, "guided_eps"))


def test_v_target(part4):
    grader.check_v_target(implementation_of(part4, "v_target"))


def test_predictions_from_v(part4):
    grader.check_predictions_from_v(implementation_of(part4, "predictions_from_v"))
