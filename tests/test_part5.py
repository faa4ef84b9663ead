"""Part 5, one test per exercise step. `pytest tests/test_part5.py` grades exercises/part5.py; add
`--impl solutions` for the reference, or `--impl PATH` for any .py file or notebook; `-k heun_step` runs one step."""

import graders.part5 as grader
from graders.core import implementation_of


def test_pf_ode_drift(part5):
    grader.check_pf_ode_drift(implementation_of(part5, "pf_ode_drift"))


def test_karras_sigmas(part5):
    grader.check_karras_sigmas(implementation_of(part5, "karras_sigmas"))


def test_heun_step(part5):
    grader.check_heun_step(implementation_of(part5, "heun_step"))


def test_flow_interpolate(part5):
    grader.check_flow_interpolate(implementation_of(part5, "flow_interpolate"))


def test_flow_predictions(part5):
    grader.check_flow_predictions(implementation_of(part5, "flow_predictions"))


def test_flow_matching_loss(part5):
    grader.check_flow_matching_loss(implementation_of(part5, "flow_matching_loss"))


def test_flow_sample(part5):
    grader.check_flow_sample(implementation_of(part5, "flow_sample"))


def test_flow_unet(part5):
    grader.check_flow_unet(implementation_of(part5, "FlowUnet"))
