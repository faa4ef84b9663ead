"""Part 2, one test per exercise step. `pytest tests/test_part2.py` grades exercises/part2.py; add
`--impl solutions` for the reference, or `--impl PATH` for any .py file or notebook; `-k unet` runs one step."""

import graders.part2 as grader
from graders.core import implementation_of


def test_group_norm(part2):
    grader.check_group_norm(implementation_of(part2, "GroupNorm"))


def test_sinusoidal_position_embeddings(part2):
    grader.check_sinusoidal_position_embeddings(implementation_of(part2, "SinusoidalPositionEmbeddings"))


def test_swish(part2):
    grader.check_swish(implementation_of(part2, "swish"))


def test_silu(part2):
    grader.check_silu(implementation_of(part2, "SiLU"))


def test_self_attention(part2):
    grader.check_self_attention(implementation_of(part2, "SelfAttention"))


def test_attention_block(part2):
    grader.check_attention_block(implementation_of(part2, "AttentionBlock"))


def test_residual_block(part2):
    grader.check_residual_block(implementation_of(part2, "ResidualBlock"))


def test_down_block(part2):
    grader.check_down_block(implementation_of(part2, "DownBlock"))


def test_mid_block(part2):
    grader.check_mid_block(implementation_of(part2, "MidBlock"))


def test_up_block(part2):
    grader.check_up_block(implementation_of(part2, "UpBlock"))


def test_unet(part2):
    grader.check_unet(implementation_of(part2, "Unet"))
