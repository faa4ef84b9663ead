"""Part 1, one test per exercise step. `pytest tests/test_part1.py` grades exercises/part1.py; add
`--impl solutions` for the reference, or `--impl PATH` for any .py file or notebook; `-k q_eq4` runs one step."""

import graders.part1 as grader
from graders.core import implementation_of


def test_linear_schedule(part1):
    grader.check_linear_schedule(implementation_of(part1, "linear_schedule"))


def test_q_eq2(part1):
    grader.check_q_eq2(implementation_of(part1, "q_eq2"))


def test_q_eq4(part1):
    grader.check_q_eq4(implementation_of(part1, "q_eq4"))


def test_noise_schedule(part1):
    grader.check_noise_schedule(implementation_of(part1, "NoiseSchedule"))


def test_noise_img(part1):
    grader.check_noise_img(implementation_of(part1, "noise_img"))


def test_reconstruct(part1):
    grader.check_reconstruct(implementation_of(part1, "reconstruct"))


def test_q_posterior(part1):
    grader.check_q_posterior(implementation_of(part1, "q_posterior"))


def test_tiny_diffuser(part1):
    grader.check_tiny_diffuser(implementation_of(part1, "TinyDiffuser"))


def test_diffusion_loss(part1):
    grader.check_diffusion_loss(implementation_of(part1, "diffusion_loss"))


def test_train(part1):
    grader.check_train(implementation_of(part1, "train"))


def test_sample(part1):
    grader.check_sample(implementation_of(part1, "sample"))
