"""Other ways to write each Part 2 step: correct ones the graders must accept, and common mistakes they must catch.

Each mistake is the reference with one thing changed, named after what a student would get wrong.
Each is registered once, beside its code: `@correct(step)` or `@mistake(step, says=REGEX)` (tests/proofs.py), from
which tests/test_graders_part2.py makes its proofs.
"""

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from solutions import part2 as ref
from solutions.part2 import swish
from tests.proofs import Catalogue

catalogue = Catalogue()
correct, mistake = catalogue.correct, catalogue.mistake

# ----------------------------------------------------------------------------------------------------------- GroupNorm


@correct("GroupNorm")
class GroupNormView(nn.Module):
    """Correct: view/reshape and explicit moments instead of einops and torch.var."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        self.num_groups, self.eps, self.affine = num_groups, eps, affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        b, c, h, w = x.shape
        g = x.reshape(b, self.num_groups, -1)
        mean = g.mean(-1, keepdim=True)
        var = ((g - mean) ** 2).mean(-1, keepdim=True)
        y = ((g - mean) * torch.rsqrt(var + self.eps)).view(b, c, h, w)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y


@correct("GroupNorm")
class GroupNormLoop(GroupNormView):
    """Correct: one group at a time, with var(correction=0)."""

    def forward(self, x):
        size = x.shape[1] // self.num_groups
        parts = []
        for k in range(self.num_groups):
            part = x[:, k * size : (k + 1) * size]
            mean = part.mean(dim=(1, 2, 3), keepdim=True)
            var = part.var(dim=(1, 2, 3), keepdim=True, correction=0)
            parts.append((part - mean) / (var + self.eps).sqrt())
        y = torch.cat(parts, dim=1)
        return y * self.weight[:, None, None] + self.bias[:, None, None] if self.affine else y


@mistake("GroupNorm", says="changed its argument `x` in place")
class GroupNormInPlace(ref.GroupNorm):
    """Centres and scales through a view of x, in place: the caller's tensor (in a U-Net, a skip read again later)
    is normalized too."""

    def forward(self, x):
        b, c, h, w = x.shape
        grouped = x.view(b, self.num_groups, -1)
        mean = grouped.mean(-1, keepdim=True)
        std = torch.sqrt(grouped.var(-1, keepdim=True, correction=0) + self.eps)
        grouped.sub_(mean).div_(std)
        y = grouped.view(b, c, h, w)
        return y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1) if self.affine else y


@mistake("GroupNorm", says="unbiased variance")
class GroupNormUnbiased(ref.GroupNorm):
    # torch.var's default: divides by n - 1
    def forward(self, x):
        g = rearrange(x, "b (g c) h w -> b g (c h w)", g=self.num_groups)
        y = ((g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, keepdim=True) + self.eps)).reshape(x.shape)
        return y * self.weight[:, None, None] + self.bias[:, None, None] if self.affine else y


@mistake("GroupNorm", says="normalized per channel")
class GroupNormPerChannel(ref.GroupNorm):
    # normalizes each channel on its own (instance norm)
    def forward(self, x):
        y = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), keepdim=True, unbiased=False) + self.eps)
        return y * self.weight[:, None, None] + self.bias[:, None, None] if self.affine else y


@mistake("GroupNorm", says="every G-th channel")
class GroupNormInterleaved(ref.GroupNorm):
    # group k takes every G-th channel
    def forward(self, x):
        h, w = x.shape[-2:]
        g = rearrange(x, "b (c g) h w -> b g (c h w)", g=self.num_groups)
        y = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, keepdim=True, unbiased=False) + self.eps)
        y = rearrange(y, "b g (c h w) -> b (c g) h w", h=h, w=w)
        return y * self.weight[:, None, None] + self.bias[:, None, None] if self.affine else y


@mistake("GroupNorm", says="eps added to the standard deviation")
class GroupNormEpsOutside(ref.GroupNorm):
    # eps added to the standard deviation
    def forward(self, x):
        g = rearrange(x, "b (g c) h w -> b g (c h w)", g=self.num_groups)
        y = ((g - g.mean(-1, keepdim=True)) / (g.std(-1, keepdim=True, unbiased=False) + self.eps)).reshape(x.shape)
        return y * self.weight[:, None, None] + self.bias[:, None, None] if self.affine else y


@mistake("GroupNorm", says="over the whole batch")
class GroupNormOverBatch(ref.GroupNorm):
    # statistics over the whole batch
    def forward(self, x):
        g = rearrange(x, "b (g c) h w -> g (b c h w)", g=self.num_groups)
        y = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, keepdim=True, unbiased=False) + self.eps)
        b, c, h, w = x.shape
        y = rearrange(y, "g (b c h w) -> b (g c) h w", b=b, h=h, w=w)
        return y * self.weight[:, None, None] + self.bias[:, None, None] if self.affine else y


@mistake("GroupNorm", says="per channel \\(not per group\\)")
class GroupNormPerGroupAffine(ref.GroupNorm):
    # one weight and bias per group instead of per channel
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        nn.Module.__init__(self)
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_groups))
            self.bias = nn.Parameter(torch.zeros(num_groups))


@mistake("GroupNorm", says="never applied")
class GroupNormNoAffine(ref.GroupNorm):
    # the parameters exist but are never applied
    def forward(self, x):
        return F.group_norm(x, self.num_groups, eps=self.eps)


# ---------------------------------------------------------------------------------------- SinusoidalPositionEmbeddings


@mistake("SinusoidalPositionEmbeddings", says="(?s)should be torch.float32.*frequencies are float64")
class EmbeddingsNumpy(nn.Module):
    """The table made with numpy, hence float64: right values, but float64 embeddings that break the U-Net."""

    def __init__(self, embedding_size):
        super().__init__()
        half = embedding_size // 2
        self.register_buffer("frequencies", torch.from_numpy(10000.0 ** (-np.arange(half) / (half - 1))))

    def forward(self, num_steps):
        angles = num_steps[:, None] * self.frequencies[None, :]
        return torch.cat((torch.sin(angles), torch.cos(angles)), dim=1)


@correct("SinusoidalPositionEmbeddings")
class EmbeddingsPow(nn.Module):
    """Correct: ** instead of exp/log, broadcasting instead of einsum, another buffer name."""

    def __init__(self, embedding_size):
        super().__init__()
        half = embedding_size // 2
        self.register_buffer("inv_freq", 10000.0 ** (-torch.arange(half) / (half - 1)))

    def forward(self, num_steps):
        angles = num_steps[:, None].float() * self.inv_freq[None, :]
        return torch.cat((torch.sin(angles), torch.cos(angles)), dim=1)


@mistake("SinusoidalPositionEmbeddings", says="(?s)meta.*made in forward on the CPU: pass device=")
class EmbeddingsFilledOnCpu(ref.SinusoidalPositionEmbeddings):
    """The embedding written into torch.zeros(B, size), made on the CPU whatever t's device."""

    def forward(self, num_steps):
        angles = num_steps.to(self.frequencies.dtype)[:, None] * self.frequencies[None, :]
        half = self.embedding_size // 2
        embedding = torch.zeros(len(num_steps), self.embedding_size)
        embedding[:, :half] = angles.sin()
        embedding[:, half:] = angles.cos()
        return embedding


@mistake("SinusoidalPositionEmbeddings", says="cosines first")
class EmbeddingsCosFirst(ref.SinusoidalPositionEmbeddings):
    # cosines in the first half
    def forward(self, num_steps):
        angles = num_steps[:, None] * self.frequencies
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


@mistake("SinusoidalPositionEmbeddings", says="interleaved")
class EmbeddingsInterleaved(ref.SinusoidalPositionEmbeddings):
    # sin, cos, sin, cos, ...
    def forward(self, num_steps):
        angles = num_steps[:, None] * self.frequencies
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)


@mistake("SinusoidalPositionEmbeddings", says="Transformer paper's spacing")
class EmbeddingsTransformerSpacing(ref.SinusoidalPositionEmbeddings):
    # divides by half, as in the Transformer paper
    def __init__(self, embedding_size):
        super().__init__(embedding_size)
        half = embedding_size // 2
        self.frequencies = torch.exp(-math.log(10000.0) * torch.arange(half) / half)


@mistake("SinusoidalPositionEmbeddings", says="base other than 10000")
class EmbeddingsBase1000(ref.SinusoidalPositionEmbeddings):
    # a base of 1000
    def __init__(self, embedding_size):
        super().__init__(embedding_size)
        half = embedding_size // 2
        self.frequencies = 1000.0 ** (-torch.arange(half) / (half - 1))


@mistake("SinusoidalPositionEmbeddings", says="minus sign")
class EmbeddingsPeriods(ref.SinusoidalPositionEmbeddings):
    # the exponent's sign dropped
    def __init__(self, embedding_size):
        super().__init__(embedding_size)
        half = embedding_size // 2
        self.frequencies = 10000.0 ** (torch.arange(half) / (half - 1))


@mistake("SinusoidalPositionEmbeddings", says="plain tensor attribute")
class EmbeddingsPlainAttribute(nn.Module):
    # frequencies kept in a plain attribute
    def __init__(self, embedding_size):
        super().__init__()
        half = embedding_size // 2
        self.frequencies = torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))

    def forward(self, num_steps):
        angles = num_steps[:, None] * self.frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


@mistake("SinusoidalPositionEmbeddings", says="not nn.Parameter")
class EmbeddingsParameter(EmbeddingsPlainAttribute):
    # frequencies as a trainable parameter
    def __init__(self, embedding_size):
        super().__init__(embedding_size)
        self.frequencies = nn.Parameter(self.frequencies)


@mistake("SinusoidalPositionEmbeddings", says="t - 1 embedded")
class EmbeddingsZeroBased(ref.SinusoidalPositionEmbeddings):
    # embeds t - 1
    def forward(self, num_steps):
        return super().forward(num_steps - 1)


# --------------------------------------------------------------------------------------------------------- swish, SiLU


@correct("swish")
def swish_functional(x):
    """Correct: torch's own."""
    return F.silu(x)


@correct("swish")
def swish_exp(x):
    """Correct: x / (1 + exp(-x))."""
    return x / (1 + torch.exp(-x))


@mistake("swish", says="sigmoid\\(x\\) alone")
def swish_sigmoid_only(x):
    return torch.sigmoid(x)


@mistake("swish", says="ReLU")
def swish_relu(x):
    return torch.relu(x)


@mistake("swish", says="GELU")
def swish_gelu(x):
    return F.gelu(x)


@mistake("swish", says="no gradient")
def swish_detached(x):
    # computed outside autograd
    return (x * torch.sigmoid(x)).detach()


@correct("SiLU")
class SiLUTorch(nn.SiLU):
    """Correct: torch's module."""


@mistake("SiLU", says="ReLU")
class SiLURelu(nn.Module):
    def forward(self, x):
        return torch.relu(x)


@mistake("SiLU", says="no parameters")
class SiLULearnable(nn.Module):
    # a trainable beta in x * sigmoid(beta x)
    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


# ------------------------------------------------------------------------------------------------------- SelfAttention


@correct("SelfAttention")
class SelfAttentionMatmulView(ref.SelfAttention):
    """Correct: matmul, view and permute instead of einops."""

    def attention_weights(self, q, k):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = x.view(b, c, h * w).permute(0, 2, 1)
        q, k, v = self.qkv_proj(tokens).chunk(3, dim=-1)
        q, k, v = (z.view(b, h * w, self.num_heads, self.head_size).transpose(1, 2) for z in (q, k, v))
        out = self.attention_weights(q, k) @ v  # (B, heads, N, d)
        out = self.out_proj(out.transpose(1, 2).reshape(b, h * w, c))
        return out.permute(0, 2, 1).reshape(b, c, h, w)


@correct("SelfAttention")
class SelfAttentionConv(nn.Module):
    """Correct: 1x1 convolutions for the projections, F.scaled_dot_product_attention in forward."""

    def __init__(self, channels, num_heads=4):
        super().__init__()
        self.num_heads, self.head_size = num_heads, channels // num_heads
        self.qkv_proj = nn.Conv2d(channels, 3 * channels, 1)
        self.out_proj = nn.Conv2d(channels, channels, 1)

    def attention_weights(self, q, k):
        return torch.einsum("bhid,bhjd->bhij", q, k).mul(self.head_size**-0.5).softmax(-1)

    def forward(self, x):
        h, w = x.shape[-2:]
        q, k, v = rearrange(
            self.qkv_proj(x), "b (three heads d) h w -> three b heads (h w) d", three=3, heads=self.num_heads
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(rearrange(out, "b heads (h w) d -> b (heads d) h w", h=h, w=w))


@correct("SelfAttention")
class SelfAttentionTorchMHA(nn.Module):
    """Correct: torch.nn.MultiheadAttention, whose in_proj is one (3C, C) matrix laid out like the reference's."""

    def __init__(self, channels, num_heads=4):
        super().__init__()
        self.head_size = channels // num_heads
        self.mha = nn.MultiheadAttention(channels, num_heads, batch_first=True)

    def attention_weights(self, q, k):
        return (q @ k.transpose(-2, -1) / self.head_size**0.5).softmax(-1)

    def forward(self, x):
        h, w = x.shape[-2:]
        tokens = rearrange(x, "b c h w -> b (h w) c")
        out, _ = self.mha(tokens, tokens, tokens, need_weights=False)
        return rearrange(out, "b (h w) c -> b c h w", h=h, w=w)


@mistake("SelfAttention", says="no 1/sqrt\\(d\\) scale")
class SelfAttentionNoScale(ref.SelfAttention):
    # forgot 1/sqrt(d)
    def attention_weights(self, q, k):
        return (q @ k.transpose(-2, -1)).softmax(-1)


@mistake("SelfAttention", says="softmax over the queries")
class SelfAttentionSoftmaxQueries(ref.SelfAttention):
    # softmax over the queries
    def attention_weights(self, q, k):
        return (q @ k.transpose(-2, -1) / math.sqrt(self.head_size)).softmax(-2)


@mistake("SelfAttention", says="divided by sqrt\\(C\\)")
class SelfAttentionScaleByChannels(ref.SelfAttention):
    # sqrt(C) instead of sqrt(head_size)
    def attention_weights(self, q, k):
        return (q @ k.transpose(-2, -1) / math.sqrt(self.channels)).softmax(-1)


@mistake("SelfAttention", says="shuffling the pixel positions")
class SelfAttentionReshapeBack(ref.SelfAttention):
    # (B, N, C) viewed straight as (B, C, H, W): out_proj's output read as (B, C, N), which the reference's
    # "b (h w) c -> b c h w" then turns into exactly out.reshape(b, c, h, w)
    def __init__(self, channels, num_heads=4):
        super().__init__(channels, num_heads)
        self.out_proj.register_forward_hook(lambda _, __, out: out.reshape(out.shape[0], out.shape[2], -1).mT)


@mistake("SelfAttention", says="interleaved channels")
class SelfAttentionInterleavedHeads(ref.SelfAttention):
    # heads from interleaved channels: q, k, v split as "(three d heads)", laid out for the reference's split
    def __init__(self, channels, num_heads=4):
        super().__init__(channels, num_heads)
        pattern = "b n (three d heads) -> b n (three heads d)"
        self.qkv_proj.register_forward_hook(lambda _, __, out: rearrange(out, pattern, three=3, heads=num_heads))


@mistake("SelfAttention", says="out_proj never applied")
class SelfAttentionNoOutProj(ref.SelfAttention):
    # out_proj created but never applied: its input goes on as its output
    def __init__(self, channels, num_heads=4):
        super().__init__(channels, num_heads)
        self.out_proj.register_forward_hook(lambda _, inputs, __: inputs[0])


@mistake("SelfAttention", says="no bias")
class SelfAttentionNoBias(ref.SelfAttention):
    # projections without biases
    def __init__(self, channels, num_heads=4):
        super().__init__(channels, num_heads)
        self.qkv_proj = nn.Linear(channels, 3 * channels, bias=False)
        self.out_proj = nn.Linear(channels, channels, bias=False)


# ------------------------------------------------------------------------------------------------------ AttentionBlock


@correct("AttentionBlock")
class AttentionBlockTorchNorm(ref.AttentionBlock):
    """Correct: torch's GroupNorm with one group."""

    def __init__(self, channels, num_heads=4):
        super().__init__(channels, num_heads)
        self.norm = nn.GroupNorm(1, channels)


@mistake("AttentionBlock", says="changed its argument `x` in place")
class AttentionBlockAddsInPlace(ref.AttentionBlock):
    """x += attention(norm(x)): right values, but the caller's x (a skip the U-Net reads again) is overwritten."""

    def forward(self, x):
        x += self.attention(self.norm(x))
        return x


@mistake("AttentionBlock", says="residual add is missing")
class AttentionBlockNoResidual(ref.AttentionBlock):
    def forward(self, x):
        return self.attention(self.norm(x))


@mistake("AttentionBlock", says="normalized x is added back")
class AttentionBlockNormedResidual(ref.AttentionBlock):
    # adds back the normalized x
    def forward(self, x):
        h = self.norm(x)
        return h + self.attention(h)


@mistake("AttentionBlock", says="GroupNorm per channel")
class AttentionBlockPerChannelNorm(ref.AttentionBlock):
    # GroupNorm(C, C) instead of GroupNorm(1, C)
    def __init__(self, channels, num_heads=4):
        super().__init__(channels, num_heads)
        self.norm = ref.GroupNorm(channels, channels)


@mistake("AttentionBlock", says="no GroupNorm before the attention")
class AttentionBlockNoNorm(ref.AttentionBlock):
    # the norm is created but never applied
    def forward(self, x):
        return x + self.attention(x)


# ------------------------------------------------------------------------------------------------------- ResidualBlock


@correct("ResidualBlock")
class ResidualBlockSequential(nn.Module):
    """Correct: nn.Sequential stages with names of their own, torch's GroupNorm and SiLU."""

    def __init__(self, in_channels, out_channels, time_emb_dim, groups):
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GroupNorm(groups, out_channels), nn.SiLU()
        )
        self.time_mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, out_channels))
        self.block2 = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(groups, out_channels), nn.SiLU()
        )
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x, t_emb):
        h = self.block1(x) + self.time_mlp(t_emb)[:, :, None, None]
        return self.block2(h) + self.skip(x)


@mistake("ResidualBlock", says="residual add is missing")
class ResidualBlockNoResidual(ref.ResidualBlock):
    def forward(self, x, t_emb):
        h = swish(self.norm1(self.conv1(x))) + self.time_proj(swish(t_emb))[:, :, None, None]
        return swish(self.norm2(self.conv2(h)))


@mistake("ResidualBlock", says="time embedding never reaches the block")
class ResidualBlockNoTime(ref.ResidualBlock):
    # time embedding never used
    def forward(self, x, t_emb):
        h = swish(self.norm1(self.conv1(x)))
        return swish(self.norm2(self.conv2(h))) + self.res_conv(x)


@mistake("ResidualBlock", says="no SiLU on the time embedding")
class ResidualBlockTimeNoSiLU(ref.ResidualBlock):
    # time embedding straight into time_proj
    def forward(self, x, t_emb):
        h = swish(self.norm1(self.conv1(x))) + self.time_proj(t_emb)[:, :, None, None]
        return swish(self.norm2(self.conv2(h))) + self.res_conv(x)


@mistake("ResidualBlock", says="time embedding is added at the end")
class ResidualBlockTimeAtEnd(ref.ResidualBlock):
    # time embedding added after the second conv
    def forward(self, x, t_emb):
        h = swish(self.norm2(self.conv2(swish(self.norm1(self.conv1(x))))))
        return h + self.time_proj(swish(t_emb))[:, :, None, None] + self.res_conv(x)


@mistake("ResidualBlock", says="residual is added before the last SiLU")
class ResidualBlockResidualInsideSiLU(ref.ResidualBlock):
    # the skip added before the last activation
    def forward(self, x, t_emb):
        h = swish(self.norm1(self.conv1(x))) + self.time_proj(swish(t_emb))[:, :, None, None]
        return swish(self.norm2(self.conv2(h)) + self.res_conv(x))


@mistake("ResidualBlock", says="ReLU instead of SiLU")
class ResidualBlockRelu(ref.ResidualBlock):
    # ReLU everywhere
    def forward(self, x, t_emb):
        h = torch.relu(self.norm1(self.conv1(x))) + self.time_proj(torch.relu(t_emb))[:, :, None, None]
        return torch.relu(self.norm2(self.conv2(h))) + self.res_conv(x)


@mistake("ResidualBlock", says="use nn.Identity\\(\\)")
class ResidualBlockAlwaysResConv(ref.ResidualBlock):
    # a 1x1 conv on the skip even when channel counts agree
    def __init__(self, in_channels, out_channels, time_emb_dim, groups):
        super().__init__(in_channels, out_channels, time_emb_dim, groups)
        self.res_conv = nn.Conv2d(in_channels, out_channels, 1)


@mistake("ResidualBlock", says="norm1 and norm2 swapped")
class ResidualBlockNormsSwapped(ref.ResidualBlock):
    # norm2 after conv1, norm1 after conv2
    def forward(self, x, t_emb):
        h = swish(self.norm2(self.conv1(x))) + self.time_proj(swish(t_emb))[:, :, None, None]
        return swish(self.norm1(self.conv2(h))) + self.res_conv(x)


# ----------------------------------------------------------------------------------------------------------- DownBlock


@mistake("DownBlock", says="skip is taken after downsampling")
class DownBlockSkipAfterDownsample(ref.DownBlock):
    def forward(self, x, t_emb):
        out = self.downsample(self.attn(self.res2(self.res1(x, t_emb), t_emb)))
        return out, out


@mistake("DownBlock", says="skip is taken before the attention")
class DownBlockSkipBeforeAttention(ref.DownBlock):
    def forward(self, x, t_emb):
        h = self.res2(self.res1(x, t_emb), t_emb)
        return self.downsample(self.attn(h)), h


@mistake("DownBlock", says="no downsampling")
class DownBlockPooling(ref.DownBlock):
    # average pooling instead of the strided conv
    def __init__(self, in_channels, out_channels, time_emb_dim, groups, downsample=True, attention=True):
        super().__init__(in_channels, out_channels, time_emb_dim, groups, downsample, attention)
        self.downsample = nn.AvgPool2d(2) if downsample else nn.Identity()


@mistake("DownBlock", says="H and W should halve")
class DownBlockNeverDownsamples(ref.DownBlock):
    # the downsampling conv is created but not applied
    def forward(self, x, t_emb):
        skip = self.attn(self.res2(self.res1(x, t_emb), t_emb))
        return skip, skip


@correct("DownBlock")
class DownBlockSequentialNames(nn.Module):
    """Correct: its own names, an nn.ModuleList of residual blocks."""

    def __init__(self, in_channels, out_channels, time_emb_dim, groups, downsample=True, attention=True):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                ref.ResidualBlock(in_channels, out_channels, time_emb_dim, groups),
                ref.ResidualBlock(out_channels, out_channels, time_emb_dim, groups),
            ]
        )
        self.attention = ref.AttentionBlock(out_channels) if attention else nn.Identity()
        self.down = nn.Conv2d(out_channels, out_channels, 4, 2, 1) if downsample else nn.Identity()

    def forward(self, x, t_emb):
        for block in self.blocks:
            x = block(x, t_emb)
        x = self.attention(x)
        return self.down(x), x


# ------------------------------------------------------------------------------------------------------------ MidBlock


@mistake("MidBlock", says="attention is never applied")
class MidBlockNoAttention(ref.MidBlock):
    def forward(self, x, t_emb):
        return self.res2(self.res1(x, t_emb), t_emb)


@mistake("MidBlock", says="res1 used twice")
class MidBlockRes1Twice(ref.MidBlock):
    def forward(self, x, t_emb):
        return self.res1(self.attn(self.res1(x, t_emb)), t_emb)


@mistake("MidBlock", says="attention first")
class MidBlockAttentionFirst(ref.MidBlock):
    def forward(self, x, t_emb):
        return self.res2(self.res1(self.attn(x), t_emb), t_emb)


# ------------------------------------------------------------------------------------------------------------- UpBlock


@mistake("UpBlock", says="skip first in the concatenation")
class UpBlockSkipFirst(ref.UpBlock):
    def forward(self, x, skip, t_emb):
        h = torch.cat([skip, x], dim=1)
        return self.upsample(self.attn(self.res2(self.res1(h, t_emb), t_emb)))


@mistake("UpBlock", says="concatenated, not added")
class UpBlockSkipAdded(ref.UpBlock):
    # skip added, so res1 takes in_channels
    def __init__(self, in_channels, out_channels, time_emb_dim, groups, upsample=True, attention=True):
        super().__init__(in_channels, out_channels, time_emb_dim, groups, upsample, attention)
        self.res1 = ref.ResidualBlock(in_channels, out_channels, time_emb_dim, groups)

    def forward(self, x, skip, t_emb):
        return self.upsample(self.attn(self.res2(self.res1(x + skip, t_emb), t_emb)))


@mistake("UpBlock", says="added to x instead of concatenated")
class UpBlockSkipAddedSameSize(ref.UpBlock):
    # skip added, then concatenated with itself to keep the reference's layer sizes
    def forward(self, x, skip, t_emb):
        h = torch.cat([x + skip, x + skip], dim=1)
        return self.upsample(self.attn(self.res2(self.res1(h, t_emb), t_emb)))


@mistake("UpBlock", says="no upsampling layer")
class UpBlockInterpolate(ref.UpBlock):
    # nearest-neighbour upsampling, no transposed conv
    def __init__(self, in_channels, out_channels, time_emb_dim, groups, upsample=True, attention=True):
        super().__init__(in_channels, out_channels, time_emb_dim, groups, upsample, attention)
        self.upsample = nn.Upsample(scale_factor=2) if upsample else nn.Identity()


@mistake("UpBlock", says="attention is never applied")
class UpBlockNoAttention(ref.UpBlock):
    # attention created but not applied
    def forward(self, x, skip, t_emb):
        return self.upsample(self.res2(self.res1(torch.cat([x, skip], 1), t_emb), t_emb))


# ---------------------------------------------------------------------------------------------------------------- Unet


@mistake("Unet", says="skips used in the wrong order")
class UnetSkipsInOrder(ref.Unet):
    # the first UpBlock gets the first (full-resolution) skip
    def forward(self, images, num_steps):
        t_emb = self.time_mlp(num_steps)
        x = self.init_conv(images)
        skips = []
        for down in self.downs:
            x, skip = down(x, t_emb)
            skips.append(skip)
        x = self.mid(x, t_emb)
        for up, skip in zip(self.ups, skips):
            x = up(x, skip, t_emb)
        return self.final_conv(self.final_res(x, t_emb))


@mistake("Unet", says="t - 1 embedded")
class UnetZeroBasedT(ref.Unet):
    # embeds t - 1
    def forward(self, images, num_steps):
        return super().forward(images, num_steps - 1)


@mistake("Unet", says="no final residual block")
class UnetNoFinalRes(ref.Unet):
    # no final residual block
    def __init__(self, config, noise_schedule=None):
        super().__init__(config, noise_schedule)
        del self.final_res
        self.final_res = lambda x, t_emb: x  # a plain function, no module: the reference's forward skips it


@mistake("Unet", says="time_mlp.1.weight gets no gradient")
class UnetDetachedTime(ref.Unet):
    # the time embedding detached: the time MLP never learns
    def __init__(self, config, noise_schedule=None):
        super().__init__(config, noise_schedule)
        self.time_mlp.register_forward_hook(lambda _, __, t_emb: t_emb.detach())


@mistake("Unet", says="submodules that differ: downs.0")
class UnetAttentionEverywhere(ref.Unet):
    # ignores attention_levels
    def __init__(self, config, noise_schedule=None):
        super().__init__(
            dataclasses.replace(config, attention_levels=tuple(range(len(config.dim_mults)))), noise_schedule
        )


@mistake("Unet", says="keep the schedule it is given")
class UnetDropsSchedule(ref.Unet):
    # never passes the schedule on
    def __init__(self, config, noise_schedule=None):
        super().__init__(config)


@mistake("Unet", says="subclass DiffusionModel")
class UnetNotADiffusionModel(nn.Module):
    # a plain nn.Module wrapping the reference
    def __init__(self, config, noise_schedule=None):
        super().__init__()
        self.unet = ref.Unet(config, noise_schedule)
        self.image_shape = self.unet.image_shape

    def forward(self, images, num_steps):
        return self.unet(images, num_steps)


# ------------------------------------------------------------------------------------ arguments and dtypes (issue 11)


@mistake("AttentionBlock", says="num_heads is not passed on")
class AttentionBlockDefaultHeads(ref.AttentionBlock):
    # never passes num_heads on: its attention always has the default 4 heads
    def __init__(self, channels, num_heads=4):
        super().__init__(channels)


@mistake("GroupNorm", says="keep the dtype of its input")
class GroupNormFloat64(ref.GroupNorm):
    # computes in float64 and returns it: right values, wrong dtype
    def forward(self, x):
        return super().forward(x.double())


@mistake("swish", says="keep the dtype of its input")
def swish_float64(x):
    # computed in float64 "for accuracy", and returned that way
    x = x.double()
    return x * torch.sigmoid(x)


# ------------------------------------------------------------------- more correct ways to assemble the blocks and Unet


@correct("MidBlock")
class MidBlockModuleList(nn.Module):
    """Correct: the three stages in a ModuleList, applied in a loop that knows which take t_emb."""

    def __init__(self, mid_channels, time_emb_dim, groups):
        super().__init__()
        self.stages = nn.ModuleList(
            [
                ref.ResidualBlock(mid_channels, mid_channels, time_emb_dim, groups),
                ref.AttentionBlock(mid_channels),
                ref.ResidualBlock(mid_channels, mid_channels, time_emb_dim, groups),
            ]
        )

    def forward(self, x, t_emb):
        for stage in self.stages:
            x = stage(x, t_emb) if isinstance(stage, ref.ResidualBlock) else stage(x)
        return x


@correct("UpBlock")
class UpBlockOptionalLayers(nn.Module):
    """Correct: no Identity placeholders; attention and upsampling are None when switched off, and the skip is
    concatenated with einops-free torch.concat."""

    def __init__(self, in_channels, out_channels, time_emb_dim, groups, upsample=True, attention=True):
        super().__init__()
        self.first = ref.ResidualBlock(2 * in_channels, out_channels, time_emb_dim, groups)
        self.second = ref.ResidualBlock(out_channels, out_channels, time_emb_dim, groups)
        self.attend = ref.AttentionBlock(out_channels) if attention else None
        self.grow = nn.ConvTranspose2d(out_channels, out_channels, 4, stride=2, padding=1) if upsample else None

    def forward(self, x, skip, t_emb):
        h = self.second(self.first(torch.concat((x, skip), dim=1), t_emb), t_emb)
        if self.attend is not None:
            h = self.attend(h)
        return self.grow(h) if self.grow is not None else h


@correct("Unet")
class UnetSkipsByIndex(ref.Unet):
    """Correct: the decoder indexes the skips from the end instead of popping them."""

    def forward(self, images, num_steps):
        t_emb = self.time_mlp(num_steps)
        x = self.init_conv(images)
        skips = []
        for down in self.downs:
            x, skip = down(x, t_emb)
            skips.append(skip)
        x = self.mid(x, t_emb)
        for j, up in enumerate(self.ups):
            x = up(x, skips[len(skips) - 1 - j], t_emb)
        return self.final_conv(self.final_res(x, t_emb))
