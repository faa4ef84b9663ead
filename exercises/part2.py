# GENERATED from solutions/part2.py by `python -m utils.authoring.build`: the reference with each exercise's body
# replaced by a stub. This file is yours: fill in the stubs, then run `pytest tests/test_part2.py`.
# Rebuilding never overwrites this file once you have edited it.
# content-hash: d069be24d8a88112
"""Part 2: a DDPM-style U-Net, built bottom-up from its parts.

After Ho, Jain and Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS 2020), Appendix B: eps_theta is a
U-Net (Ronneberger et al. 2015) of wide-ResNet blocks, with group normalization (Wu and He 2018) in place of weight
normalization, self-attention (as in the Transformer, Vaswani et al. 2017) at low resolutions, and the time step t
given to every residual block as a sinusoidal position embedding. Sizes here are smaller than the paper's, for
28x28 FashionMNIST, and some details differ from the paper's network: conv -> norm -> activation in each block
(the paper: norm -> activation -> conv), 4x4 stride-2 convolutions down and transposed convolutions up (the paper:
3x3 stride-2 convolutions, nearest-neighbour upsampling and a 3x3 convolution), one skip per level (the paper: one
per residual block and downsampling), GELU in the time MLP (the paper: swish), a 7x7 input convolution (the paper:
3x3) and no dropout.

Shapes: B images, C channels, H x W pixels, N = H * W positions, E the time-embedding size. Time-step convention,
as in Part 1: t counts steps of noise and runs over {1, ..., T}; the model sees t itself, through its embedding.

The parts, from small to large:

    GroupNorm                        normalize each group of channels of each image to mean 0, variance 1
    SinusoidalPositionEmbeddings     t -> sin/cos features at geometrically spaced frequencies
    swish, SiLU                      x * sigmoid(x), the activation of every block
    SelfAttention, AttentionBlock    every pixel position looks at every other one
    ResidualBlock                    two 3x3 convolutions, the time embedding added between them, and a skip
    DownBlock, MidBlock, UpBlock     one resolution level of the encoder, the bottleneck, one level of the decoder
    Unet                             all of it: a DiffusionModel that Part 1's `train` and `sample` accept
"""

import math
from dataclasses import dataclass

import torch
from einops import einsum, rearrange
from torch import Tensor, nn

from utils.engine.model import DiffusionModel


@dataclass(frozen=True)
class UnetConfig:
    """Sizes of the U-Net. The defaults give about 1.7M parameters for (1, 28, 28) images, like the peer
    Hugging Face UNet2DModel used in Part 3."""

    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of the images it denoises
    channels: int = 28  # channels after the input convolution; level i has channels * dim_mults[i]
    dim_mults: tuple[int, ...] = (1, 2, 4)  # one entry per resolution level; H and W halve between levels
    groups: int = 4  # GroupNorm groups in every residual block; must divide every level's channel count
    attention_levels: tuple[int, ...] = (1, 2)  # levels with self-attention; not level 0, full resolution: too slow


# --------------------------------------------------------------------------------------------------------------------
# Normalization


class GroupNorm(nn.Module):
    """Group normalization (Wu and He 2018), the same computation as `torch.nn.GroupNorm`.

    The C channels are split into `num_groups` groups of C / num_groups consecutive channels. Within each image and
    each group, the values over those channels and all H x W positions are normalized,
        y = (x - mean) / sqrt(var + eps),
    with the biased variance (divide by the count n, not n - 1). With `affine`, each channel is then scaled by its
    own `weight` and shifted by its own `bias`, initialized to 1 and 0.

    Unlike batch normalization it never mixes images, so it behaves the same in training and in sampling, and with
    any batch size, even 1.

    Parameters (only with affine=True):
        weight: shape (num_channels,), initialized to ones.
        bias: shape (num_channels,), initialized to zeros.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        raise NotImplementedError("GroupNorm.__init__ is yours to write")

    def forward(self, x: Tensor) -> Tensor:
        """Normalize x of shape (B, C, H, W) per image and per group of channels; return the same shape."""
        raise NotImplementedError("GroupNorm.forward is yours to write")


# --------------------------------------------------------------------------------------------------------------------
# The time step


class SinusoidalPositionEmbeddings(nn.Module):
    """Embed step counts t as sines and cosines of t at `embedding_size / 2` frequencies (DDPM Appendix B).

    With half = embedding_size / 2 and i = 0, ..., half - 1, the frequencies fall geometrically from 1 to 1/10000:
        f_i = 10000 ** (-i / (half - 1))
    and the embedding of t puts all the sines first, then all the cosines:
        emb(t) = [sin(t f_0), ..., sin(t f_{half-1}), cos(t f_0), ..., cos(t f_{half-1})].
    This is the spacing of the DDPM code (the Transformer paper divides by half instead of half - 1).

    The frequencies are fixed: compute them once in __init__ and keep them in a buffer (`register_buffer`), not a
    parameter (they are not trained) and not a plain attribute (a buffer moves with `.to(device)`).

    Buffers:
        frequencies: float32, shape (embedding_size // 2,).
    """

    frequencies: Tensor

    def __init__(self, embedding_size: int):
        super().__init__()
        if embedding_size % 2 != 0 or embedding_size < 4:
            raise ValueError(f"embedding_size must be even and at least 4; got {embedding_size}")
        self.embedding_size = embedding_size
        raise NotImplementedError("SinusoidalPositionEmbeddings.__init__ is yours to write")

    def forward(self, num_steps: Tensor) -> Tensor:
        """Embed t.

        Args:
            num_steps: t per image, shape (B,), integers (any float works too).
        Returns:
            float tensor of shape (B, embedding_size): sines in the first half, cosines in the second.
        """
        raise NotImplementedError("SinusoidalPositionEmbeddings.forward is yours to write")


# --------------------------------------------------------------------------------------------------------------------
# The activation


def swish(x: Tensor) -> Tensor:
    """The swish (or SiLU) activation, swish(x) = x * sigmoid(x) (Ramachandran et al. 2017), elementwise.

    Args:
        x: any shape, float.
    Returns:
        the same shape.
    """
    raise NotImplementedError("swish is yours to write")


class SiLU(nn.Module):
    """`swish` as a module, so it can sit in an `nn.Sequential`. It has no parameters."""

    def forward(self, x: Tensor) -> Tensor:
        """swish(x), the same shape as x."""
        raise NotImplementedError("SiLU.forward is yours to write")


# --------------------------------------------------------------------------------------------------------------------
# Attention


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H x W positions of a feature map (DDPM Appendix B).

    Each position is a token whose features are its C channel values. For each head, with head_size d = C / heads,
        weights = softmax(q k^T / sqrt(d))   (softmax over the keys: each query's weights sum to 1)
        out     = weights v
    then the heads are put side by side again and projected by `out_proj`.

    Layout (the grader loads the reference's weights into yours, so follow it):
        qkv_proj: one Linear(C, 3C) (or a 1x1 convolution) applied at each position. Its 3C outputs are q, then k,
            then v; within each, head 0 takes the first d channels, head 1 the next d, and so on.
        out_proj: Linear(C, C) (or a 1x1 convolution), both with biases.
    """

    def __init__(self, channels: int, num_heads: int = 4):
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.channels = channels
        self.num_heads = num_heads
        self.head_size = channels // num_heads
        raise NotImplementedError("SelfAttention.__init__ is yours to write")

    def attention_weights(self, q: Tensor, k: Tensor) -> Tensor:
        """The attention pattern softmax(q k^T / sqrt(d)), with d = head_size.

        Args:
            q: queries, shape (B, heads, N, d).
            k: keys, shape (B, heads, N, d).
        Returns:
            weights of shape (B, heads, N, N): entry [b, h, i, j] is how much query position i attends to key
            position j, so each row [b, h, i, :] sums to 1.
        """
        raise NotImplementedError("SelfAttention.attention_weights is yours to write")

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention of x, shape (B, C, H, W), over its H * W positions; returns shape (B, C, H, W).

        Use `self.attention_weights` for the pattern (or F.scaled_dot_product_attention here: the grader checks
        both methods).
        """
        raise NotImplementedError("SelfAttention.forward is yours to write")


class AttentionBlock(nn.Module):
    """GroupNorm with one group, then self-attention, then the input added back: x + attention(norm(x)).

    Submodules, in this order: norm = GroupNorm(1, channels); attention = SelfAttention(channels, num_heads).
    """

    def __init__(self, channels: int, num_heads: int = 4):
        super().__init__()
        raise NotImplementedError("AttentionBlock.__init__ is yours to write")

    def forward(self, x: Tensor) -> Tensor:
        """x: shape (B, C, H, W). Returns the same shape."""
        raise NotImplementedError("AttentionBlock.forward is yours to write")


# --------------------------------------------------------------------------------------------------------------------
# Residual blocks and the U-Net's levels


class ResidualBlock(nn.Module):
    """A wide-ResNet block that also sees the time step (DDPM Appendix B):

        h = SiLU(norm1(conv1(x)))                       conv1: 3x3, in_channels -> out_channels, padding 1
        h = h + time_proj(SiLU(t_emb)) per channel      time_proj: Linear(time_emb_dim, out_channels)
        h = SiLU(norm2(conv2(h)))                       conv2: 3x3, out_channels -> out_channels, padding 1
        return h + res_conv(x)

    res_conv is a 1x1 convolution in_channels -> out_channels when they differ, and the identity (no parameters)
    when they are equal. norm1 and norm2 are GroupNorm(groups, out_channels).

    Submodules, in this order: conv1, norm1, time_proj, conv2, norm2, res_conv.
    """

    def __init__(self, in_channels: int, out_channels: int, time_emb_dim: int, groups: int):
        super().__init__()
        raise NotImplementedError("ResidualBlock.__init__ is yours to write")

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        """
        Args:
            x: shape (B, in_channels, H, W).
            t_emb: the time embedding, shape (B, time_emb_dim).
        Returns:
            shape (B, out_channels, H, W).
        """
        raise NotImplementedError("ResidualBlock.forward is yours to write")


class DownBlock(nn.Module):
    """One level of the encoder: two residual blocks, attention, then (unless it is the last level) downsampling.

        h = res1(x, t_emb)               in_channels -> out_channels
        h = res2(h, t_emb)               out_channels -> out_channels
        h = attn(h)                      AttentionBlock(out_channels), or the identity when attention=False
        skip = h                         kept, at this level's resolution, for the matching UpBlock
        out = downsample(h)              Conv2d(out_channels, out_channels, 4, stride=2, padding=1): H, W halve;
                                         the identity when downsample=False

    Submodules, in this order: res1, res2, attn, downsample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        time_emb_dim: int,
        groups: int,
        downsample: bool = True,
        attention: bool = True,
    ):
        super().__init__()
        raise NotImplementedError("DownBlock.__init__ is yours to write")

    def forward(self, x: Tensor, t_emb: Tensor) -> tuple[Tensor, Tensor]:
        """
        Args:
            x: shape (B, in_channels, H, W).
            t_emb: shape (B, time_emb_dim).
        Returns:
            out: shape (B, out_channels, H/2, W/2), or (B, out_channels, H, W) without downsampling.
            skip: shape (B, out_channels, H, W), taken before downsampling.
        """
        raise NotImplementedError("DownBlock.forward is yours to write")


class MidBlock(nn.Module):
    """The bottleneck, at the lowest resolution: residual block, attention, residual block.

    Submodules, in this order: res1 = ResidualBlock(mid, mid), attn = AttentionBlock(mid), res2 = ResidualBlock(mid, mid).
    """

    def __init__(self, mid_channels: int, time_emb_dim: int, groups: int):
        super().__init__()
        raise NotImplementedError("MidBlock.__init__ is yours to write")

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        """x: shape (B, mid_channels, H, W); t_emb: shape (B, time_emb_dim). Returns the shape of x."""
        raise NotImplementedError("MidBlock.forward is yours to write")


class UpBlock(nn.Module):
    """One level of the decoder: take in the matching skip, two residual blocks, attention, then upsampling.

        h = cat([x, skip], dim=1)        x first; 2 * in_channels channels
        h = res1(h, t_emb)               2 * in_channels -> out_channels
        h = res2(h, t_emb)               out_channels -> out_channels
        h = attn(h)                      AttentionBlock(out_channels), or the identity when attention=False
        out = upsample(h)                ConvTranspose2d(out_channels, out_channels, 4, stride=2, padding=1):
                                         H, W double; the identity when upsample=False

    Concatenating (not adding) keeps the encoder's fine detail in channels of its own, for res1 to weigh.

    Submodules, in this order: res1, res2, attn, upsample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        time_emb_dim: int,
        groups: int,
        upsample: bool = True,
        attention: bool = True,
    ):
        super().__init__()
        raise NotImplementedError("UpBlock.__init__ is yours to write")

    def forward(self, x: Tensor, skip: Tensor, t_emb: Tensor) -> Tensor:
        """
        Args:
            x: shape (B, in_channels, H, W), from the level below.
            skip: shape (B, in_channels, H, W), from the DownBlock of this level.
            t_emb: shape (B, time_emb_dim).
        Returns:
            shape (B, out_channels, 2H, 2W), or (B, out_channels, H, W) without upsampling.
        """
        raise NotImplementedError("UpBlock.forward is yours to write")


# --------------------------------------------------------------------------------------------------------------------
# The U-Net


class Unet(DiffusionModel):
    """The noise predictor eps_theta(x_t, t): a DDPM-style U-Net with time embeddings (after DDPM Appendix B).

    With c = channels, L = len(dim_mults) levels and dims[i] = c * dim_mults[i]:

        time_mlp     SinusoidalPositionEmbeddings(c) -> Linear(c, 4c) -> GELU -> Linear(4c, 4c): t_emb, E = 4c
        init_conv    Conv2d(C_img, c, 7, padding=3)
        downs[i]     DownBlock(dims[i-1] (c for i = 0), dims[i]); every level but the last halves H and W
        mid          MidBlock(dims[L-1])
        ups[j]       for level i = L-1, ..., 0 (j = L-1-i): UpBlock(dims[i], dims[i-1] (c for i = 0)), fed the skip of
                     downs[i]; every one but the last doubles H and W
        final_res    ResidualBlock(c, c)
        final_conv   Conv2d(c, C_img, 1)

    Args:
        config: the sizes (`UnetConfig`); c = config.channels, and so on.
        noise_schedule: the schedule it denoises for; not needed to run the network, needed to train or sample it.

    Levels listed in `attention_levels` have attention in their DownBlock and UpBlock; the mid block always has.
    H and W must be divisible by 2 ** (L - 1).

    For (1, 28, 28) images and the defaults: 28x28 (28 ch) -> 14x14 (56 ch) -> 7x7 (112 ch), mid at 7x7, and back.
    """

    def __init__(self, config: UnetConfig, noise_schedule: nn.Module | None = None):
        super().__init__(config, noise_schedule)
        img_channels, height, width = self.image_shape
        channels, dim_mults, groups = config.channels, config.dim_mults, config.groups
        attention_levels = config.attention_levels
        factor = 2 ** (len(dim_mults) - 1)
        if height % factor or width % factor:
            raise ValueError(f"H and W ({height}, {width}) must be divisible by 2 ** (levels - 1) = {factor}")
        raise NotImplementedError("Unet.__init__ is yours to write")

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        """Predict the noise in `images`.

        Args:
            images: x_t, shape (B, C_img, H, W).
            num_steps: t, shape (B,), ints in {1, ..., T}.
        Returns:
            eps_theta(x_t, t), shape (B, C_img, H, W).
        """
        raise NotImplementedError("Unet.forward is yours to write")
