"""Proof that Part 2's graders grade: each passes on the reference and on other correct implementations, fails on
the common mistakes with a message that names them, and reports untouched stubs as "not implemented yet"."""

import pytest
import torch
from torch import nn

import graders.part2 as grader
import solutions.part2 as ref
from graders.core import GraderFailure
from tests import variants_part2 as v
from tests.proofs import proofs

CORRECT = [
    (grader.check_group_norm, ref.GroupNorm),
    (grader.check_group_norm, v.GroupNormView),
    (grader.check_group_norm, v.GroupNormLoop),
    (grader.check_sinusoidal_position_embeddings, ref.SinusoidalPositionEmbeddings),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsPow),
    (grader.check_swish, ref.swish),
    (grader.check_swish, v.swish_functional),
    (grader.check_swish, v.swish_exp),
    (grader.check_silu, ref.SiLU),
    (grader.check_silu, v.SiLUTorch),
    (grader.check_self_attention, ref.SelfAttention),
    (grader.check_self_attention, v.SelfAttentionMatmulView),
    (grader.check_self_attention, v.SelfAttentionConv),
    (grader.check_self_attention, v.SelfAttentionTorchMHA),
    (grader.check_attention_block, ref.AttentionBlock),
    (grader.check_attention_block, v.AttentionBlockTorchNorm),
    (grader.check_residual_block, ref.ResidualBlock),
    (grader.check_residual_block, v.ResidualBlockSequential),
    (grader.check_down_block, ref.DownBlock),
    (grader.check_down_block, v.DownBlockSequentialNames),
    (grader.check_mid_block, ref.MidBlock),
    (grader.check_mid_block, v.MidBlockModuleList),
    (grader.check_up_block, ref.UpBlock),
    (grader.check_up_block, v.UpBlockOptionalLayers),
    (grader.check_unet, ref.Unet),
    (grader.check_unet, v.UnetSkipsByIndex),
]

# (grader, mistaken implementation, a regular expression the failure message must match)
MISTAKES = [
    (grader.check_group_norm, v.GroupNormUnbiased, "unbiased variance"),
    (grader.check_group_norm, v.GroupNormFloat64, "keep the dtype of its input"),
    (grader.check_swish, v.swish_float64, "keep the dtype of its input"),
    (grader.check_attention_block, v.AttentionBlockDefaultHeads, "num_heads is not passed on"),
    (grader.check_group_norm, v.GroupNormPerChannel, "normalized per channel"),
    (grader.check_group_norm, v.GroupNormInterleaved, "every G-th channel"),
    (grader.check_group_norm, v.GroupNormEpsOutside, "eps added to the standard deviation"),
    (grader.check_group_norm, v.GroupNormOverBatch, "over the whole batch"),
    (grader.check_group_norm, v.GroupNormPerGroupAffine, "per channel \\(not per group\\)"),
    (grader.check_group_norm, v.GroupNormNoAffine, "never applied"),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsCosFirst, "cosines first"),
    (
        grader.check_sinusoidal_position_embeddings,
        v.EmbeddingsNumpy,
        "(?s)should be torch.float32.*frequencies are float64",
    ),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsInterleaved, "interleaved"),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsTransformerSpacing, "Transformer paper's spacing"),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsBase1000, "base other than 10000"),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsPeriods, "minus sign"),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsPlainAttribute, "plain tensor attribute"),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsParameter, "not nn.Parameter"),
    (grader.check_sinusoidal_position_embeddings, v.EmbeddingsZeroBased, "t - 1 embedded"),
    (grader.check_swish, v.swish_sigmoid_only, "sigmoid\\(x\\) alone"),
    (grader.check_swish, v.swish_relu, "ReLU"),
    (grader.check_swish, v.swish_gelu, "GELU"),
    (grader.check_swish, v.swish_detached, "no gradient"),
    (grader.check_silu, v.SiLURelu, "ReLU"),
    (grader.check_silu, v.SiLULearnable, "no parameters"),
    (grader.check_self_attention, v.SelfAttentionNoScale, "no 1/sqrt\\(d\\) scale"),
    (grader.check_self_attention, v.SelfAttentionSoftmaxQueries, "softmax over the queries"),
    (grader.check_self_attention, v.SelfAttentionScaleByChannels, "divided by sqrt\\(C\\)"),
    (grader.check_self_attention, v.SelfAttentionReshapeBack, "shuffling the pixel positions"),
    (grader.check_self_attention, v.SelfAttentionInterleavedHeads, "interleaved channels"),
    (grader.check_self_attention, v.SelfAttentionNoOutProj, "out_proj never applied"),
    (grader.check_self_attention, v.SelfAttentionNoBias, "no bias"),
    (grader.check_attention_block, v.AttentionBlockNoResidual, "residual add is missing"),
    (grader.check_attention_block, v.AttentionBlockNormedResidual, "normalized x is added back"),
    (grader.check_attention_block, v.AttentionBlockPerChannelNorm, "GroupNorm per channel"),
    (grader.check_attention_block, v.AttentionBlockNoNorm, "no GroupNorm before the attention"),
    (grader.check_residual_block, v.ResidualBlockNoResidual, "residual add is missing"),
    (grader.check_residual_block, v.ResidualBlockNoTime, "time embedding never reaches the block"),
    (grader.check_residual_block, v.ResidualBlockTimeNoSiLU, "no SiLU on the time embedding"),
    (grader.check_residual_block, v.ResidualBlockTimeAtEnd, "time embedding is added at the end"),
    (grader.check_residual_block, v.ResidualBlockResidualInsideSiLU, "residual is added before the last SiLU"),
    (grader.check_residual_block, v.ResidualBlockRelu, "ReLU instead of SiLU"),
    (grader.check_residual_block, v.ResidualBlockAlwaysResConv, "use nn.Identity\\(\\)"),
    (grader.check_residual_block, v.ResidualBlockNormsSwapped, "norm1 and norm2 swapped"),
    (grader.check_down_block, v.DownBlockSkipAfterDownsample, "skip is taken after downsampling"),
    (grader.check_down_block, v.DownBlockSkipBeforeAttention, "skip is taken before the attention"),
    (grader.check_down_block, v.DownBlockPooling, "no downsampling"),
    (grader.check_down_block, v.DownBlockNeverDownsamples, "H and W should halve"),
    (grader.check_mid_block, v.MidBlockNoAttention, "attention is never applied"),
    (grader.check_mid_block, v.MidBlockRes1Twice, "res1 used twice"),
    (grader.check_mid_block, v.MidBlockAttentionFirst, "attention first"),
    (grader.check_up_block, v.UpBlockSkipFirst, "skip first in the concatenation"),
    (grader.check_up_block, v.UpBlockSkipAdded, "concatenated, not added"),
    (grader.check_up_block, v.UpBlockSkipAddedSameSize, "added to x instead of concatenated"),
    (grader.check_up_block, v.UpBlockInterpolate, "no upsampling layer"),
    (grader.check_up_block, v.UpBlockNoAttention, "attention is never applied"),
    (grader.check_unet, v.UnetSkipsInOrder, "skips used in the wrong order"),
    (grader.check_unet, v.UnetZeroBasedT, "t - 1 embedded"),
    (grader.check_unet, v.UnetNoFinalRes, "no final residual block"),
    (grader.check_unet, v.UnetDetachedTime, "time_mlp.1.weight gets no gradient"),
    (grader.check_unet, v.UnetAttentionEverywhere, "submodules that differ: downs.0"),
    (grader.check_unet, v.UnetDropsSchedule, "keep the schedule it is given"),
    (grader.check_unet, v.UnetNotADiffusionModel, "subclass DiffusionModel"),
]


globals().update(proofs(2, CORRECT, MISTAKES))


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
