"""Proof that Part 2's graders grade: each passes on the reference and on other correct implementations, fails on
the common mistakes with a message that names them, and reports untouched stubs as "not implemented yet"."""

import pytest
import torch
from torch import nn

import graders.part2 as grader
import solutions.part2 as ref
from graders.core import GraderFailure
from tests.proofs import proofs

globals().update(proofs(2))


def test_misaligned_parameters_are_named():
    """A layer registered out of order: the failure names the parameter that does not line up."""

    class Reordered(ref.ResidualBlock):
        def __init__(self, in_channels, out_channels, time_emb_dim, groups):
            nn.Module.__init__(self)
            self.time_proj = nn.Linear(time_emb_dim, out_channels)
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            self.norm1 = ref.GroupNorm(groups, out_channels)
            self.conv_two = nn.Conv2d(out_channels, out_channels, 3, padding=1)
            self.norm2 = ref.GroupNorm(groups, out_channels)
            self.res_conv = nn.Conv2d(in_channels, out_channels, 1)

    named = r"parameter #0 \(registration order\)[\s\S]*conv1.weight with shape \(8, 4, 3, 3\)[\s\S]*time_proj.weight"
    with pytest.raises(GraderFailure, match=named):
        grader.check_residual_block(Reordered)


def test_reference_matches_torch_multihead_attention():
    """An independent check of the reference: its qkv layout is exactly nn.MultiheadAttention's."""
    torch.manual_seed(0)
    ours = ref.SelfAttention(8, num_heads=2)
    theirs = nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv_proj.weight)
        theirs.in_proj_bias.copy_(ours.qkv_proj.bias)
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(2, 8, 3, 5)
    tokens = x.flatten(2).transpose(1, 2)
    expected = theirs(tokens, tokens, tokens)[0].transpose(1, 2).reshape(2, 8, 3, 5)
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-4)


def test_reference_unet_size_and_shapes():
    """The default U-Net: about 1.7M parameters (like the Hugging Face peer), skips at 28, 14 and 7 pixels."""
    model = ref.Unet(ref.UnetConfig())
    assert sum(p.numel() for p in model.parameters()) == 1_672_441
    t_emb = model.time_mlp(torch.tensor([1, 1000]))
    x = model.init_conv(torch.randn(2, 1, 28, 28))
    sizes = []
    for down in model.downs:
        x, skip = down(x, t_emb)
        sizes.append(tuple(skip.shape[1:]))
    assert sizes == [(28, 28, 28), (56, 14, 14), (112, 7, 7)]
    assert model.config == ref.UnetConfig() and model.noise_schedule is None


def test_notebook_can_be_graded_from_its_definitions():
    """--impl NOTEBOOK runs only the imports, defs and classes of the notebook: here, the solved one."""
    from graders.core import REPO_ROOT, load_impl

    module = load_impl(str(REPO_ROOT / "solutions" / "part2_unet.ipynb"), 2)
    grader.check_residual_block(module.ResidualBlock)
