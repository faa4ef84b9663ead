"""Graders for Part 2: the U-Net's parts, each compared with the reference in `solutions/part2.py`.

Every module is checked with identical weights: the grader builds the reference, gives its parameters small random
offsets (so that no two norms or biases are alike and a swapped pair shows), loads them into your module (by name, or
else in registration order, shape by shape) and compares outputs on small inputs. A 1x1 convolution may stand in for
a Linear layer and the other way round: their weights hold the same numbers, shaped (out, in, 1, 1) or (out, in).
Beyond equality each grader checks a property of its own (GroupNorm against torch.nn.GroupNorm, the embedding's known
values, attention's invariance to the order of pixels, a residual path, the time embedding reaching the block, the
resolutions of outputs and skips, gradients and a few optimizer steps for the U-Net). Where a common mistake gives a
recognisable output, the failure names it.
"""

import copy

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from graders.core import (
    call,
    copy_weights,
    expect,
    expect_close,
    expect_dtype,
    expect_subclass,
    expect_tensor,
    fail,
    grader,
    n_params,
)
from graders.fixtures import expect_diffusion_model, randn
from solutions import part1
from solutions import part2 as ref
from utils.engine.training import TrainConfig

ATOL, RTOL = 1e-5, 1e-4  # one small module in float32
DEEP_ATOL, DEEP_RTOL = 1e-4, 1e-3  # a stack of blocks: float32 rounding adds up


# --------------------------------------------------------------------------------------------------------------------
# Identical weights


def perturbed(module: nn.Module, seed: int) -> nn.Module:
    """`module` with every parameter moved by a small random offset, so that every norm and bias differs.

    The reference's GroupNorms start at weight 1, bias 0 and look alike; offsets make a swapped norm1/norm2 visible.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator))
    return module


def expect_no_parameters(module: nn.Module, what: str, likely: str) -> None:
    """`module` should hold no nn.Parameter; `what` says so, `likely` why it has some."""
    names = [name for name, _ in module.named_parameters()]
    expect(not names, what, "none", ", ".join(names), likely)


def _submodule_counts(model: nn.Module) -> dict[str, int]:
    """Parameter counts per child module, with ModuleLists and Sequentials opened one level."""
    counts = {}
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleList, nn.Sequential)):
            for sub_name, sub in child.named_children():
                counts[f"{name}.{sub_name}"] = n_params(sub)
        else:
            counts[name] = n_params(child)
    return counts


def expect_same_structure(reference: nn.Module, student: nn.Module, what: str, likely: dict[int, str] | None = None):
    """The student's module has the reference's parameter count; if not, name the submodules that differ.

    `likely` maps a difference in count (student minus reference) to the mistake that gives it.
    """
    expected, got = n_params(reference), n_params(student)
    if expected == got:
        return
    ref_counts, stu_counts = _submodule_counts(reference), _submodule_counts(student)
    if ref_counts.keys() == stu_counts.keys():
        differ = [
            f"{name}: {stu_counts[name]:,} (reference {ref_counts[name]:,})"
            for name in ref_counts
            if ref_counts[name] != stu_counts[name]
        ]
        where = "submodules that differ: " + "; ".join(differ)
    else:
        where = (
            f"reference submodules {', '.join(f'{k} {v:,}' for k, v in ref_counts.items())}; "
            f"yours {', '.join(f'{k} {v:,}' for k, v in stu_counts.items())}"
        )
    hint = (likely or {}).get(got - expected, "compare your layers with the docstring's list of submodules")
    fail(f"{what} has {got:,} parameters; the reference has {expected:,} ({where}).", f"{expected:,}", f"{got:,}", hint)


# --------------------------------------------------------------------------------------------------------------------
# GroupNorm


def _group_norm_mistakes(x: Tensor, groups: int, eps: float, weight: Tensor | None, bias: Tensor | None) -> dict:
    """What common wrong group norms give on x."""
    b, c, h, w = x.shape

    def affine(y: Tensor) -> Tensor:
        return y if weight is None else y * weight[:, None, None] + bias[:, None, None]

    def normalized(g: Tensor, unbiased: bool = False) -> Tensor:  # over the last axis
        return (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, keepdim=True, unbiased=unbiased) + eps)

    g = rearrange(x, "b (g c) h w -> b g (c h w)", g=groups)
    unbiased = normalized(g, unbiased=True)
    outside = (g - g.mean(-1, keepdim=True)) / (g.std(-1, keepdim=True, unbiased=False) + eps)
    over_batch = normalized(rearrange(x, "b (g c) h w -> g (b c h w)", g=groups))
    interleaved = normalized(rearrange(x, "b (c g) h w -> b g (c h w)", g=groups))
    mistakes = {
        "unbiased variance: torch.var divides by n - 1 by default; group norm uses the biased variance, "
        "var(..., unbiased=False) (or correction=0)": affine(
            rearrange(unbiased, "b g (c h w) -> b (g c) h w", c=c // groups, h=h, w=w)
        ),
        "eps added to the standard deviation: it goes under the square root, (x - mean) / sqrt(var + eps)": affine(
            rearrange(outside, "b g (c h w) -> b (g c) h w", c=c // groups, h=h, w=w)
        ),
        "statistics taken over the whole batch: each image is normalized on its own": affine(
            rearrange(over_batch, "g (b c h w) -> b (g c) h w", b=b, c=c // groups, h=h, w=w)
        ),
        "groups made of every G-th channel: group k holds channels k*C/G to (k+1)*C/G - 1, consecutive ones "
        "('b (g c) h w', not 'b (c g) h w')": affine(
            rearrange(interleaved, "b g (c h w) -> b (c g) h w", c=c // groups, h=h, w=w)
        ),
        "eps ignored: add self.eps to the variance": F.group_norm(x, groups, weight, bias, eps=0.0),
    }
    if groups != c:
        mistakes[
            "normalized per channel (each channel its own group, like InstanceNorm): normalize over all "
            "C / num_groups channels of a group together"
        ] = F.group_norm(x, c, weight, bias, eps)
    if groups != 1:
        mistakes["normalized over all channels at once (one group): split the channels into num_groups groups"] = (
            F.group_norm(x, 1, weight, bias, eps)
        )
    if weight is not None:
        mistakes["weight and bias swapped: y * weight + bias"] = F.group_norm(x, groups, bias, weight, eps)
        mistakes["affine weight and bias never applied: y * weight[c] + bias[c] per channel"] = F.group_norm(
            x, groups, None, None, eps
        )
    return mistakes


@grader("GroupNorm", expects="class", one_thread=True)
def check_group_norm(GroupNorm) -> None:
    # Odd shapes: C not a power of 2, H != W, a 1x1 map where a group holds only 2 values; eps large enough to matter.
    cases = [((2, 6, 5, 3), 3, 1e-5, 2.0, 1.0), ((3, 4, 1, 1), 2, 1e-5, 1.0, -0.5), ((2, 9, 4, 7), 3, 0.5, 0.5, 0.3)]
    for index, (shape, groups, eps, scale, shift) in enumerate(cases):
        channels = shape[1]
        for affine in (True, False):
            what = f"GroupNorm({groups}, {channels}, eps={eps}, affine={affine}) on x of shape {shape}"
            norm = GroupNorm(groups, channels, eps=eps, affine=affine)
            expect_subclass(norm, nn.Module, "GroupNorm")
            torch_norm = nn.GroupNorm(groups, channels, eps=eps, affine=affine)
            params = dict(norm.named_parameters())
            if affine:
                expect(
                    set(params) == {"weight", "bias"} and all(p.shape == (channels,) for p in params.values()),
                    f"{what} should have two parameters, weight and bias, of shape ({channels},).",
                    f"weight ({channels},), bias ({channels},)",
                    ", ".join(f"{n} {tuple(p.shape)}" for n, p in params.items()) or "no parameters",
                    "one scale and one shift per channel (not per group), as nn.Parameter",
                )
                starts = {"weight": "the scale starts at 1 (torch.ones)", "bias": "the shift starts at 0 (torch.zeros)"}
                for name, likely in starts.items():
                    expect_close(
                        params[name],
                        getattr(torch_norm, name),
                        f"{what}: {name} at initialization",
                        atol=0,
                        likely=likely,
                    )
                perturbed(torch_norm, seed=index)
                with torch.no_grad():
                    for name in starts:
                        params[name].copy_(getattr(torch_norm, name))
            else:
                expect_no_parameters(
                    norm, f"{what} should have no parameters.", "with affine=False there is no weight or bias"
                )
            x = randn(*shape, seed=10 + index) * scale + shift
            got = call(what, norm, x)
            expected = torch_norm(x)
            expect_close(
                got,
                expected,
                f"{what}, compared with torch.nn.GroupNorm",
                atol=ATOL,
                rtol=RTOL,
                likely="mean and biased variance over each group's channels and all positions, per image",
                mistakes=_group_norm_mistakes(
                    x, groups, eps, torch_norm.weight if affine else None, torch_norm.bias if affine else None
                ),
            )
    got = GroupNorm(2, 4)(torch.tensor([1.0, 3.0, 10.0, 10.0]).reshape(1, 4, 1, 1))
    expect_close(
        got,
        torch.tensor([-1.0, 1.0, 0.0, 0.0]).reshape(1, 4, 1, 1),
        "GroupNorm(2, 4) on the channels [1, 3, 10, 10] of a 1x1 image",
        atol=1e-4,
        likely="group 1 = channels 1, 3 (mean 2, variance 1) and group 2 = 10, 10 (variance 0, so 0 out)",
    )


# --------------------------------------------------------------------------------------------------------------------
# SinusoidalPositionEmbeddings

# emb(t) of SinusoidalPositionEmbeddings(8) at t = 1, 10, 100: four sines at frequencies 1, 10^(-4/3), 10^(-8/3),
# 10^-4, then the four cosines. Written out here, not computed, so that the reference cannot drift.
KNOWN_EMBEDDINGS = torch.tensor(
    [
        [0.841471, 0.046399, 0.002154, 0.0001, 0.540302, 0.998923, 0.999998, 1.0],
        [-0.544021, 0.447671, 0.021543, 0.001, -0.839072, 0.894198, 0.999768, 1.0],
        [-0.506366, -0.997495, 0.213781, 0.01, 0.862319, -0.070741, 0.976882, 0.99995],
    ]
)


def _embedding(t: Tensor, frequencies: Tensor, cos_first: bool = False, interleave: bool = False) -> Tensor:
    angles = t.double()[:, None] * frequencies.double()[None, :]
    first, second = (angles.cos(), angles.sin()) if cos_first else (angles.sin(), angles.cos())
    if interleave:
        return rearrange(torch.stack([first, second], dim=-1), "b f two -> b (f two)").float()
    return torch.cat([first, second], dim=-1).float()


def _frequency_mistakes(size: int) -> dict[str, Tensor]:
    half = size // 2
    i = torch.arange(half, dtype=torch.float64)
    return {
        "frequencies 10000^(-i / half), the Transformer paper's spacing: this course (like the DDPM code) divides "
        "by half - 1, so the lowest frequency is exactly 1/10000": 10000.0 ** (-i / half),
        "frequencies 10000^(-2i / embedding_size) = 10000^(-i / half): divide by half - 1, not half": 10000.0
        ** (-2 * i / size),
        "frequencies in rising order: f_i = 10000^(-i / (half - 1)) falls from 1 to 1/10000": (
            10000.0 ** (-i / (half - 1))
        ).flip(0),
        "the periods 10000^(i / (half - 1)) instead of the frequencies: use a minus sign in the exponent": 10000.0
        ** (i / (half - 1)),
        "a base other than 10000 (1000?): f_i = 10000^(-i / (half - 1))": 1000.0 ** (-i / (half - 1)),
    }


@grader("SinusoidalPositionEmbeddings", expects="class")
def check_sinusoidal_position_embeddings(SinusoidalPositionEmbeddings) -> None:
    size = 16
    embed = SinusoidalPositionEmbeddings(size)
    expect_subclass(embed, nn.Module, "SinusoidalPositionEmbeddings")
    reference = ref.SinusoidalPositionEmbeddings(size)
    expected_frequencies = reference.frequencies

    # 1. the frequencies: fixed numbers in a buffer, not trained
    expect_no_parameters(
        embed,
        "SinusoidalPositionEmbeddings should have no trainable parameters.",
        "the frequencies are fixed: self.register_buffer(...), not nn.Parameter",
    )
    buffers = dict(embed.named_buffers())
    if not buffers:
        plain = [n for n, v in vars(embed).items() if isinstance(v, Tensor)]
        fail(
            "SinusoidalPositionEmbeddings holds no buffer.",
            "the frequencies in a buffer (self.register_buffer)",
            f"plain tensor attributes {plain}" if plain else "no buffers",
            "a plain tensor attribute is not moved by .to(device): register it with "
            'self.register_buffer("frequencies", ...)'
            if plain
            else "compute the frequencies once in __init__ and register them with self.register_buffer",
        )
    matching = [
        n
        for n, b in buffers.items()
        if b.shape == expected_frequencies.shape
        and torch.allclose(b.double(), expected_frequencies.double(), rtol=1e-5, atol=1e-9)
    ]
    if not matching:
        name, buffer = next(iter(buffers.items()))
        expect_close(
            buffer.reshape(-1) if buffer.numel() == size // 2 else buffer,
            expected_frequencies,
            f"the buffer {name!r} of SinusoidalPositionEmbeddings({size}): the frequencies",
            atol=1e-9,
            rtol=1e-5,
            likely="f_i = 10000^(-i / (half - 1)) for i = 0, ..., half - 1, half = embedding_size / 2",
            mistakes=_frequency_mistakes(size),
        )
    moved = SinusoidalPositionEmbeddings(size).to(torch.float64)
    expect(
        any(b.dtype == torch.float64 for b in moved.buffers()),
        "SinusoidalPositionEmbeddings(16).to(torch.float64) should convert its frequencies.",
        "a float64 buffer",
        "no float64 buffer",
        "the frequencies are not a registered buffer",
    )

    # 2. the embedding, against the reference, at small and large t
    t = torch.tensor([1, 2, 3, 10, 50, 999, 1000])
    got = call(f"SinusoidalPositionEmbeddings({size})(t)", embed, t)
    expect_tensor(got, f"SinusoidalPositionEmbeddings({size})(t) for t of shape (7,)", shape=(7, size), floating=True)
    expect_dtype(
        got,
        torch.float32,
        f"SinusoidalPositionEmbeddings({size})(t), for integer t, like the U-Net's float32 weights it feeds",
        "the frequencies are float64 (a table made with numpy or math.* floats in a float64 tensor): the U-Net's "
        "float32 layers then fail with a dtype error; make the table with torch (float32), or .float() it before "
        "register_buffer",
    )
    frequencies = expected_frequencies.double()
    mistakes = {
        "cosines first: put the sines in the first half, the cosines in the second": _embedding(
            t, frequencies, cos_first=True
        ),
        "sines and cosines interleaved (sin, cos, sin, cos, ...): concatenate all sines, then all cosines": _embedding(
            t, frequencies, interleave=True
        ),
        "t - 1 embedded: embed t itself": _embedding(t - 1, frequencies),
        "t scaled to [0, 1] (divided by T = 1000): embed t itself": _embedding(t / 1000, frequencies),
    }
    for description, wrong_frequencies in _frequency_mistakes(size).items():
        mistakes[description] = _embedding(t, wrong_frequencies)
    expect_close(
        got,
        reference(t),
        f"SinusoidalPositionEmbeddings({size}) at t = {t.tolist()}",
        atol=1e-4,
        rtol=1e-4,
        likely="emb(t) = [sin(t f_0), ..., sin(t f_{half-1}), cos(t f_0), ..., cos(t f_{half-1})]",
        mistakes=mistakes,
    )

    # 3. known values, written out
    small = call("SinusoidalPositionEmbeddings(8)(t)", SinusoidalPositionEmbeddings(8), torch.tensor([1, 10, 100]))
    expect_close(
        small,
        KNOWN_EMBEDDINGS,
        "SinusoidalPositionEmbeddings(8) at t = 1, 10, 100",
        atol=1e-4,
        likely="at t = 1 the first entry is sin(1) = 0.8415 and entry half is cos(1) = 0.5403",
    )

    # 4. every step gets its own embedding: no two rows for t = 1..1000 alike
    rows = call("SinusoidalPositionEmbeddings(32)(t)", SinusoidalPositionEmbeddings(32), torch.arange(1, 1001))
    distance = torch.cdist(rows.double(), rows.double())
    distance.fill_diagonal_(float("inf"))
    closest = distance.min()
    expect(
        closest > 1e-3,
        "SinusoidalPositionEmbeddings(32): two time steps in 1..1000 get (nearly) the same embedding.",
        "every row distinct (the reference's closest pair is about 0.05 apart)",
        f"closest pair {closest.item():.3g}",
        "every frequency the same, or t not multiplied in: each dimension needs its own frequency f_i",
    )


# --------------------------------------------------------------------------------------------------------------------
# swish and SiLU


def _swish_mistakes(x: Tensor) -> dict[str, Tensor]:
    return {
        "sigmoid(x) alone: swish multiplies it by x": torch.sigmoid(x),
        "ReLU: swish is x * sigmoid(x), smooth and slightly negative for x < 0": torch.relu(x),
        "x * sigmoid(-x): the sign inside the sigmoid": x * torch.sigmoid(-x),
        "GELU: close, but swish is x * sigmoid(x)": F.gelu(x),
        "x * tanh(x): swish uses the sigmoid": x * torch.tanh(x),
    }


@grader("swish")
def check_swish(swish) -> None:
    x = torch.cat([torch.linspace(-6, 6, 25), randn(15, seed=0) * 3]).reshape(2, 4, 5).requires_grad_()
    got = call("swish(x)", swish, x)
    expected = x * torch.sigmoid(x)
    expect_close(
        got,
        expected,
        "swish(x) for x of shape (2, 4, 5)",
        atol=1e-6,
        likely="swish(x) = x * sigmoid(x), elementwise",
        mistakes=_swish_mistakes(x.detach()),
    )
    known = call("swish(tensor([0, 1, -1, 20]))", swish, torch.tensor([0.0, 1.0, -1.0, 20.0]))
    expect_close(known, torch.tensor([0.0, 0.731059, -0.268941, 20.0]), "swish at 0, 1, -1 and 20", atol=1e-5)
    expect(
        got.requires_grad,
        "swish(x) carries no gradient back to x.",
        "an output that autograd can differentiate",
        "an output detached from x",
        "no .detach(), .item(), numpy or torch.no_grad() inside swish",
    )
    got.sum().backward()
    sig = torch.sigmoid(x.detach())
    expect_close(
        x.grad,
        sig * (1 + x.detach() * (1 - sig)),
        "the gradient of swish",
        atol=1e-5,
        likely="compute swish with torch operations so autograd can differentiate it",
    )


@grader("SiLU", expects="class", uses=("swish",))
def check_silu(SiLU) -> None:
    module = SiLU()
    expect_subclass(module, nn.Module, "SiLU", "class SiLU(nn.Module), so it can sit in an nn.Sequential")
    expect_no_parameters(module, "SiLU should have no parameters.", "swish has nothing to learn: no nn.Parameter here")
    x = randn(2, 3, 4, 5, seed=1) * 3
    expect_close(
        call("SiLU()(x)", module, x),
        x * torch.sigmoid(x),
        "SiLU()(x) for x of shape (2, 3, 4, 5)",
        atol=1e-6,
        likely="forward returns swish(x)",
        mistakes=_swish_mistakes(x),
    )


# --------------------------------------------------------------------------------------------------------------------
# Attention


def _attention(
    module: ref.SelfAttention,
    x: Tensor,
    scale: float | None = None,
    softmax_dim: int = -1,
    heads: int | None = None,
    layout: str = "(three heads d)",
    project: bool = True,
    scramble_output: bool = False,
) -> Tensor:
    """The reference's self-attention with one thing changed: what a common mistake computes."""
    b, c, h, w = x.shape
    heads = heads or module.num_heads
    d = c // heads
    qkv = module.qkv_proj(rearrange(x, "b c h w -> b (h w) c"))
    q, k, v = rearrange(qkv, f"b n {layout} -> three b heads n d", three=3, heads=heads)
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) * (d**-0.5 if scale is None else scale)
    out = torch.einsum("bhqk,bhkd->bhqd", scores.softmax(dim=softmax_dim), v)
    out = rearrange(out, "b heads n d -> b n (heads d)")
    if project:
        out = module.out_proj(out)
    if scramble_output:  # (B, N, C) reshaped to (B, C, H, W) without moving C in front
        return out.reshape(b, c, h, w)
    return rearrange(out, "b (h w) c -> b c h w", h=h, w=w)


def _permute_positions(x: Tensor, order: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    flat = rearrange(x, "b c h w -> b c (h w)")[..., order]
    return rearrange(flat, "b c (h w) -> b c h w", h=h, w=w)


@grader("SelfAttention", expects="class", one_thread=True)
def check_self_attention(SelfAttention) -> None:
    channels, heads = 8, 2
    torch.manual_seed(0)
    reference = perturbed(ref.SelfAttention(channels, heads), seed=1)
    module = SelfAttention(channels, heads)
    copy_weights(reference, module, f"SelfAttention({channels}, num_heads={heads})")

    # 1. the attention pattern on its own, from given q and k
    d = channels // heads
    q, k = randn(2, heads, 6, d, seed=2) * 1.5, randn(2, heads, 6, d, seed=3) * 1.5
    expect(
        hasattr(module, "attention_weights"),
        "SelfAttention has no method attention_weights(q, k).",
        "a method returning softmax(q k^T / sqrt(d)) of shape (B, heads, N, N)",
        "no such method",
        "keep the method from the stub: the grader checks the attention pattern through it",
    )
    weights = call("attention_weights(q, k)", module.attention_weights, q, k)
    expect_tensor(
        weights, "attention_weights(q, k) for q, k of shape (2, 2, 6, 4)", shape=(2, heads, 6, 6), floating=True
    )
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k)
    expect_close(
        weights,
        reference.attention_weights(q, k),
        "attention_weights(q, k) for q, k of shape (2, 2, 6, 4)",
        atol=1e-5,
        likely="softmax(q k^T / sqrt(head_size)) over the last axis (the keys)",
        mistakes={
            "no 1/sqrt(d) scale: divide the scores q k^T by sqrt(head_size) before the softmax": scores.softmax(-1),
            "scores divided by d: the scale is 1/sqrt(d)": (scores / d).softmax(-1),
            "scores divided by sqrt(C): d is the head size, C / num_heads": (scores / channels**0.5).softmax(-1),
            "softmax over the queries (dim=-2): each query's weights over the keys must sum to 1, softmax(dim=-1)": (
                scores / d**0.5
            ).softmax(-2),
            "scores transposed (k q^T): entry [i, j] is query i against key j, q @ k.transpose(-2, -1)": (
                scores / d**0.5
            )
            .transpose(-2, -1)
            .softmax(-1),
            "softmax over the heads (dim=1): softmax over the keys, the last axis": (scores / d**0.5).softmax(1),
        },
    )
    sums = weights.sum(-1)
    expect_close(
        sums,
        torch.ones_like(sums),
        "each query's attention weights should sum to 1",
        atol=1e-5,
        likely="softmax over the keys, the last axis",
    )
    uniform = call("attention_weights(zeros, k)", module.attention_weights, torch.zeros(1, heads, 5, d), k[:1, :, :5])
    expect_close(
        uniform,
        torch.full((1, heads, 5, 5), 0.2),
        "attention_weights with q = 0 (every score 0)",
        atol=1e-6,
        likely="equal scores give equal weights 1/N",
    )

    # 2. the module: invariant to the order of positions, then equal to the reference
    x = randn(2, channels, 3, 4, seed=4)
    what = f"SelfAttention({channels}, num_heads={heads}) on x of shape (2, {channels}, 3, 4)"
    got = call(what, module, x)
    expect_tensor(got, what, shape=tuple(x.shape), floating=True)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(5))
    shuffled = call(what + " with its positions shuffled", module, _permute_positions(x, order))
    expect_close(
        shuffled,
        _permute_positions(got, order),
        f"{what}: shuffling the pixel positions of x should shuffle the output the same way",
        atol=1e-5,
        rtol=1e-4,
        likely="positions get mixed: go from (B, C, H, W) to tokens (B, H*W, C) and back with rearrange or "
        "permute/transpose; a bare .view/.reshape from (B, N, C) to (B, C, H, W) scrambles them",
    )
    expect_close(
        got,
        reference(x),
        f"{what}, with the reference's weights",
        atol=ATOL,
        rtol=RTOL,
        likely="tokens (B, H*W, C) -> qkv_proj -> q, k, v split as in the docstring -> softmax(q k^T / sqrt(d)) v per "
        "head -> heads side by side -> out_proj -> back to (B, C, H, W)",
        mistakes={
            "no 1/sqrt(d) scale on the scores": _attention(reference, x, scale=1.0),
            "softmax over the queries (dim=-2): softmax over the keys, dim=-1": _attention(
                reference, x, softmax_dim=-2
            ),
            "scores divided by sqrt(C): d is the head size, C / num_heads": _attention(
                reference, x, scale=channels**-0.5
            ),
            "one head: split q, k and v into num_heads heads of C / num_heads channels": _attention(
                reference, x, heads=1
            ),
            "heads taken from interleaved channels: within q, head 0 takes the first d channels "
            "('(three heads d)', not '(three d heads)')": _attention(reference, x, layout="(three d heads)"),
            "q, k, v taken per head ('(heads three d)'): the 3C outputs are all of q, then all of k, then all of v": _attention(
                reference, x, layout="(heads three d)"
            ),
            "out_proj never applied to the attention output": _attention(reference, x, project=False),
            "(B, H*W, C) reshaped straight to (B, C, H, W): move C in front with rearrange or transpose first": _attention(
                reference, x, scramble_output=True
            ),
        },
    )
    tall = randn(1, channels, 5, 2, seed=6)
    expect_close(
        call("SelfAttention on a 5x2 map", module, tall),
        reference(tall),
        "SelfAttention on x of shape (1, 8, 5, 2), H != W",
        atol=ATOL,
        rtol=RTOL,
        likely="H and W swapped when going back to (B, C, H, W): rearrange(..., h=H, w=W)",
    )


@grader("AttentionBlock", expects="class", uses=("GroupNorm", "SelfAttention"), one_thread=True)
def check_attention_block(AttentionBlock) -> None:
    # Two heads, not the default four: a block that does not pass num_heads on to its attention shows here.
    channels, heads = 8, 2
    torch.manual_seed(0)
    reference = perturbed(ref.AttentionBlock(channels, heads), seed=1)
    module = AttentionBlock(channels, num_heads=heads)
    copy_weights(reference, module, f"AttentionBlock({channels}, num_heads={heads})")
    x = randn(2, channels, 3, 5, seed=2) * 2 + 0.5
    what = f"AttentionBlock({channels}, num_heads={heads}) on x of shape (2, {channels}, 3, 5)"
    got = call(what, module, x)
    normed = reference.norm(x)
    w, b = reference.norm.weight, reference.norm.bias
    four_heads = ref.SelfAttention(channels, 4)
    four_heads.load_state_dict(reference.attention.state_dict())
    expect_close(
        got,
        reference(x),
        f"{what}, with the reference's weights",
        atol=ATOL,
        rtol=RTOL,
        likely="x + attention(norm(x)), with norm = GroupNorm(1, channels)",
        mistakes={
            "num_heads is not passed on: the attention runs with its default 4 heads; build "
            "SelfAttention(channels, num_heads)": x + four_heads(normed),
            "the residual add is missing: return x + attention(norm(x))": reference.attention(normed),
            "the normalized x is added back: the residual is the block's input x itself": normed
            + reference.attention(normed),
            "no GroupNorm before the attention": x + reference.attention(x),
            "GroupNorm per channel: the block normalizes with one group, GroupNorm(1, channels)": x
            + reference.attention(F.group_norm(x, channels, w, b)),
            "BatchNorm: the block normalizes each image on its own, GroupNorm(1, channels)": x
            + reference.attention(F.batch_norm(x, None, None, w, b, training=True)),
        },
    )
    # the residual path, on its own: with out_proj zeroed the attention adds nothing and x must come back unchanged
    silent = copy.deepcopy(reference)
    with torch.no_grad():
        silent.attention.out_proj.weight.zero_()
        silent.attention.out_proj.bias.zero_()
    copy_weights(silent, module, f"AttentionBlock({channels})")
    expect_close(
        call(what, module, x),
        x,
        f"{what}, with the attention's out_proj set to zero",
        atol=1e-6,
        likely="the residual add is missing: the block returns x + attention(norm(x))",
    )


# --------------------------------------------------------------------------------------------------------------------
# Residual blocks


def _residual_mistakes(block: ref.ResidualBlock, x: Tensor, t_emb: Tensor) -> dict[str, Tensor]:
    """Outputs of a ResidualBlock wired wrongly, built from the reference's own layers."""
    silu = ref.swish

    def time(emb: Tensor) -> Tensor:
        return rearrange(block.time_proj(emb), "b c -> b c 1 1")

    first = silu(block.norm1(block.conv1(x)))

    def rest(h: Tensor) -> Tensor:
        return silu(block.norm2(block.conv2(h)))

    skip = block.res_conv(x)
    relu_first = torch.relu(block.norm1(block.conv1(x))) + rearrange(
        block.time_proj(torch.relu(t_emb)), "b c -> b c 1 1"
    )
    return {
        "the residual add is missing: return h + res_conv(x)": rest(first + time(silu(t_emb))),
        "the time embedding never reaches the block: add time_proj(SiLU(t_emb)) to h after the first SiLU": rest(first)
        + skip,
        "no SiLU on the time embedding before time_proj": rest(first + time(t_emb)) + skip,
        "the time embedding is added before norm1: add it after the first SiLU": rest(
            silu(block.norm1(block.conv1(x) + time(silu(t_emb))))
        )
        + skip,
        "the time embedding is added at the end: add it between the two convolutions": rest(first)
        + time(silu(t_emb))
        + skip,
        "the residual is added before the last SiLU: h = SiLU(norm2(conv2(h))), then h + res_conv(x)": silu(
            block.norm2(block.conv2(first + time(silu(t_emb)))) + skip
        ),
        "ReLU instead of SiLU (swish)": torch.relu(block.norm2(block.conv2(relu_first))) + skip,
        "norm1 and norm2 swapped": silu(block.norm1(block.conv2(silu(block.norm2(block.conv1(x))) + time(silu(t_emb)))))
        + skip,
        "SiLU before the GroupNorm: conv -> GroupNorm -> SiLU": block.norm2(
            silu(block.conv2(block.norm1(silu(block.conv1(x))) + time(silu(t_emb))))
        )
        + skip,
    }


@grader("ResidualBlock", expects="class", uses=("GroupNorm", "SiLU"), one_thread=True)
def check_residual_block(ResidualBlock) -> None:
    time_emb_dim, groups = 6, 2
    for in_channels, out_channels, seed in ((4, 8, 1), (8, 8, 2)):
        what = f"ResidualBlock({in_channels}, {out_channels}, time_emb_dim={time_emb_dim}, groups={groups})"
        torch.manual_seed(seed)
        reference = perturbed(ref.ResidualBlock(in_channels, out_channels, time_emb_dim, groups), seed=seed)
        module = ResidualBlock(in_channels, out_channels, time_emb_dim, groups)
        expect_same_structure(
            reference,
            module,
            what,
            likely={
                in_channels * out_channels
                + out_channels: "a 1x1 res_conv although in_channels == out_channels: use nn.Identity() then",
                -(
                    in_channels * out_channels + out_channels
                ): "no 1x1 res_conv although the channel counts differ: x cannot be added to h without it",
                -(
                    time_emb_dim * out_channels + out_channels
                ): "no time_proj: the block needs Linear(time_emb_dim, out_channels) for the time embedding",
                -4 * out_channels: "GroupNorms without affine parameters, or missing ones: norm1 and norm2 are "
                "GroupNorm(groups, out_channels)",
            },
        )
        copy_weights(reference, module, what)
        x = randn(2, in_channels, 5, 4, seed=10 + seed)
        t_emb = randn(2, time_emb_dim, seed=20 + seed) * 2
        got = call(what, module, x, t_emb)
        expect_tensor(
            got, f"{what} on x of shape (2, {in_channels}, 5, 4)", shape=(2, out_channels, 5, 4), floating=True
        )
        other = call(what, module, x, randn(2, time_emb_dim, seed=30 + seed) * 2)
        expect(
            not torch.allclose(got, other, atol=1e-4),
            f"{what} gives the same output for two different time embeddings.",
            "outputs that depend on t_emb",
            "the same output",
            "the time embedding never reaches the block: add time_proj(SiLU(t_emb)) to h, one value per channel",
        )
        expect_close(
            got,
            reference(x, t_emb),
            f"{what} on x of shape (2, {in_channels}, 5, 4), with the reference's weights",
            atol=ATOL,
            rtol=RTOL,
            likely="follow the docstring's recipe step by step",
            mistakes=_residual_mistakes(reference, x, t_emb),
        )
        # the residual path on its own: with norm2's scale and shift at 0 the main path gives SiLU(0) = 0
        muted = copy.deepcopy(reference)
        with torch.no_grad():
            muted.norm2.weight.zero_()
            muted.norm2.bias.zero_()
        copy_weights(muted, module, what)
        expect_close(
            call(what, module, x, t_emb),
            reference.res_conv(x),
            f"{what} with norm2's weight and bias set to 0 (the main path then gives 0)",
            atol=1e-5,
            likely="the residual add is missing: return h + res_conv(x)",
            mistakes={"the residual add is missing: return h + res_conv(x)": torch.zeros(2, out_channels, 5, 4)},
        )


# --------------------------------------------------------------------------------------------------------------------
# The U-Net's levels


@grader("DownBlock", expects="class", uses=("ResidualBlock", "AttentionBlock"), one_thread=True)
def check_down_block(DownBlock) -> None:
    in_channels, out_channels, time_emb_dim, groups = 4, 8, 6, 2
    x = randn(2, in_channels, 6, 8, seed=1)
    t_emb = randn(2, time_emb_dim, seed=2)
    for downsample, attention, seed in ((True, True, 3), (False, True, 4), (True, False, 5)):
        what = (
            f"DownBlock({in_channels}, {out_channels}, time_emb_dim={time_emb_dim}, groups={groups}, "
            f"downsample={downsample}, attention={attention})"
        )
        torch.manual_seed(seed)
        reference = perturbed(
            ref.DownBlock(in_channels, out_channels, time_emb_dim, groups, downsample, attention), seed
        )
        module = DownBlock(in_channels, out_channels, time_emb_dim, groups, downsample=downsample, attention=attention)
        attn_params = n_params(ref.AttentionBlock(out_channels))
        expect_same_structure(
            reference,
            module,
            what,
            likely={
                attn_params: "an AttentionBlock although attention=False: use nn.Identity() then",
                -attn_params: "no AttentionBlock after the residual blocks",
                out_channels * out_channels * 16 + out_channels: "a downsampling conv although downsample=False",
                -(out_channels * out_channels * 16 + out_channels): "no downsampling: Conv2d(out, out, 4, stride=2, "
                "padding=1) halves H and W (max or average pooling has no parameters)",
            },
        )
        copy_weights(reference, module, what)
        result = call(what, module, x, t_emb)
        expect(
            isinstance(result, (tuple, list)) and len(result) == 2,
            f"{what} should return two tensors, (out, skip).",
            "a tuple (out, skip)",
            type(result).__name__,
            "return self.downsample(skip), skip",
        )
        out, skip = result
        skip = expect_tensor(skip, f"the skip returned by {what}")
        half = (2, out_channels, 3, 4) if downsample else (2, out_channels, 6, 8)
        expect_tensor(
            skip,
            f"the skip of {what} on x of shape (2, 4, 6, 8)",
            shape=(2, out_channels, 6, 8),
            likely="the skip is taken after downsampling: keep it at the input's resolution, before self.downsample"
            if tuple(skip.shape) == (2, out_channels, 3, 4)
            else "the skip comes from the attention's output",
        )
        expect_tensor(
            out,
            f"the output of {what} on x of shape (2, 4, 6, 8)",
            shape=half,
            likely="H and W should halve: Conv2d(out, out, kernel_size=4, stride=2, padding=1)"
            if downsample
            else "no downsampling when downsample=False",
        )
        expected_out, expected_skip = reference(x, t_emb)
        h1 = reference.res1(x, t_emb)
        h2 = reference.res2(h1, t_emb)
        expect_close(
            skip,
            expected_skip,
            f"the skip of {what}, with the reference's weights",
            atol=ATOL,
            rtol=RTOL,
            likely="skip = attn(res2(res1(x, t_emb), t_emb))",
            mistakes={
                "the skip is taken before the attention: it is the attention's output": h2,
                "the skip is taken after the first residual block: it is the attention's output": h1,
            }
            if attention
            else {"the skip is taken after the first residual block": h1},
        )
        expect_close(
            out,
            expected_out,
            f"the output of {what}, with the reference's weights",
            atol=ATOL,
            rtol=RTOL,
            likely="out = downsample(skip)",
            mistakes={"downsampling applied to the output of res2, skipping the attention": reference.downsample(h2)}
            if attention
            else None,
        )
        other = call(what, module, x, randn(2, time_emb_dim, seed=9))[1]
        expect(
            not torch.allclose(other, skip, atol=1e-4),
            f"{what} ignores the time embedding.",
            "an output that depends on t_emb",
            "the same output for two t_emb",
            "pass t_emb to both residual blocks",
        )


@grader("MidBlock", expects="class", uses=("ResidualBlock", "AttentionBlock"), one_thread=True)
def check_mid_block(MidBlock) -> None:
    channels, time_emb_dim, groups = 8, 6, 2
    what = f"MidBlock({channels}, time_emb_dim={time_emb_dim}, groups={groups})"
    torch.manual_seed(0)
    reference = perturbed(ref.MidBlock(channels, time_emb_dim, groups), seed=1)
    module = MidBlock(channels, time_emb_dim, groups)
    expect_same_structure(
        reference,
        module,
        what,
        likely={
            -n_params(ref.AttentionBlock(channels)): "no AttentionBlock between the residual blocks",
            -n_params(ref.ResidualBlock(channels, channels, time_emb_dim, groups)): "one residual block is missing",
        },
    )
    copy_weights(reference, module, what)
    x = randn(2, channels, 3, 3, seed=2)
    t_emb = randn(2, time_emb_dim, seed=3)
    got = call(what, module, x, t_emb)
    r1, attn, r2 = reference.res1, reference.attn, reference.res2
    expect_close(
        got,
        reference(x, t_emb),
        f"{what} on x of shape (2, {channels}, 3, 3), with the reference's weights",
        atol=ATOL,
        rtol=RTOL,
        likely="res2(attn(res1(x, t_emb)), t_emb)",
        mistakes={
            "the attention is never applied: res1 -> attn -> res2": r2(r1(x, t_emb), t_emb),
            "attention first: res1 -> attn -> res2": r2(r1(attn(x), t_emb), t_emb),
            "attention last: res1 -> attn -> res2": attn(r2(r1(x, t_emb), t_emb)),
            "res1 used twice: the second residual block is res2": r1(attn(r1(x, t_emb)), t_emb),
            "res2 is never applied": attn(r1(x, t_emb)),
        },
    )


@grader("UpBlock", expects="class", uses=("ResidualBlock", "AttentionBlock"), one_thread=True)
def check_up_block(UpBlock) -> None:
    in_channels, out_channels, time_emb_dim, groups = 8, 4, 6, 2
    x = randn(2, in_channels, 3, 4, seed=1)
    skip = randn(2, in_channels, 3, 4, seed=2) * 2
    t_emb = randn(2, time_emb_dim, seed=3)
    for upsample, attention, seed in ((True, True, 4), (False, True, 5), (True, False, 6)):
        what = (
            f"UpBlock({in_channels}, {out_channels}, time_emb_dim={time_emb_dim}, groups={groups}, "
            f"upsample={upsample}, attention={attention})"
        )
        torch.manual_seed(seed)
        reference = perturbed(ref.UpBlock(in_channels, out_channels, time_emb_dim, groups, upsample, attention), seed)
        module = UpBlock(in_channels, out_channels, time_emb_dim, groups, upsample=upsample, attention=attention)
        added = ref.ResidualBlock(in_channels, out_channels, time_emb_dim, groups)
        doubled = ref.ResidualBlock(2 * in_channels, out_channels, time_emb_dim, groups)
        attn_params = n_params(ref.AttentionBlock(out_channels))
        up_params = out_channels * out_channels * 16 + out_channels
        expect_same_structure(
            reference,
            module,
            what,
            likely={
                n_params(added) - n_params(doubled): "res1 takes in_channels: the skip is concatenated, not added, so "
                "res1 = ResidualBlock(2 * in_channels, out_channels, ...)",
                attn_params: "an AttentionBlock although attention=False: use nn.Identity() then",
                -attn_params: "no AttentionBlock after the residual blocks",
                up_params: "a transposed conv although upsample=False",
                -up_params: "no upsampling layer: ConvTranspose2d(out, out, kernel_size=4, stride=2, padding=1) doubles "
                "H and W (nn.Upsample has no parameters)",
            },
        )
        copy_weights(reference, module, what)
        got = call(what, module, x, skip, t_emb)
        size = (2, out_channels, 6, 8) if upsample else (2, out_channels, 3, 4)
        expect_tensor(
            got,
            f"{what} on x and skip of shape (2, 8, 3, 4)",
            shape=size,
            likely="H and W should double: ConvTranspose2d(out, out, kernel_size=4, stride=2, padding=1)"
            if upsample
            else "no upsampling when upsample=False",
        )
        swapped = call(what, module, skip, x, t_emb)
        expect(
            not torch.allclose(swapped, got, atol=1e-4),
            f"{what} gives the same output with x and skip swapped.",
            "the skip in its own channels",
            "an output symmetric in x and skip",
            "the skip is added to x instead of concatenated: torch.cat([x, skip], dim=1)",
        )
        r1, r2, attn, up = reference.res1, reference.res2, reference.attn, reference.upsample
        expect_close(
            got,
            reference(x, skip, t_emb),
            f"{what}, with the reference's weights",
            atol=ATOL,
            rtol=RTOL,
            likely="upsample(attn(res2(res1(cat([x, skip], dim=1), t_emb), t_emb)))",
            mistakes={
                "skip first in the concatenation: torch.cat([x, skip], dim=1), x first": up(
                    attn(r2(r1(torch.cat([skip, x], 1), t_emb), t_emb))
                ),
                "the attention is never applied": up(r2(r1(torch.cat([x, skip], 1), t_emb), t_emb)),
                "res2 is never applied": up(attn(r1(torch.cat([x, skip], 1), t_emb))),
            },
        )


# --------------------------------------------------------------------------------------------------------------------
# The U-Net


@grader(
    "Unet",
    expects="class",
    time_limit=120,
    uses=("SinusoidalPositionEmbeddings", "DownBlock", "MidBlock", "UpBlock"),
    one_thread=True,
)  # the whole network, forward and backward
def check_unet(Unet) -> None:
    # 1. the default model: a DiffusionModel of the reference's size, submodule by submodule
    torch.manual_seed(0)
    reference = ref.Unet(ref.UnetConfig())
    model = call("Unet(UnetConfig())", Unet, ref.UnetConfig())
    expect_diffusion_model(model, "Unet", (1, 28, 28), "Part 1's train and sample accept DiffusionModels")
    schedule = part1.NoiseSchedule(part1.linear_schedule(5))
    with_schedule = call("Unet(config, noise_schedule)", Unet, ref.UnetConfig(channels=8, groups=2), schedule)
    expect(
        getattr(with_schedule, "noise_schedule", None) is schedule,
        "Unet(config, noise_schedule) should keep the schedule it is given.",
        "model.noise_schedule is the schedule passed in",
        repr(getattr(with_schedule, "noise_schedule", "no attribute"))[:80],
        "pass noise_schedule on: super().__init__(config, noise_schedule)",
    )
    expect_same_structure(
        reference,
        model,
        "Unet((1, 28, 28))",
        likely={
            -n_params(reference.final_res): "no final residual block before the 1x1 output conv",
            -n_params(reference.mid): "no MidBlock between the encoder and the decoder",
        },
    )
    copy_weights(reference, model, "Unet((1, 28, 28))")
    images = randn(2, 1, 28, 28, seed=1)
    t = torch.tensor([1, 700])
    got = call(
        "Unet((1, 28, 28)) on images of shape (2, 1, 28, 28)",
        model,
        images,
        t,
        likely="the skips used in the wrong order: the first UpBlock takes the last (deepest) skip, skips.pop()",
    )
    expect_tensor(
        got,
        "Unet((1, 28, 28))'s output on images of shape (2, 1, 28, 28)",
        shape=(2, 1, 28, 28),
        likely="the output should have the input's shape: final 1x1 conv back to the image's channels",
    )
    expect_close(
        got,
        reference(images, t),
        "Unet((1, 28, 28))'s output, with the reference's weights",
        atol=DEEP_ATOL,
        rtol=DEEP_RTOL,
        likely="every block matched the reference on its own; check the wiring in Unet.forward against the "
        "docstring (time_mlp, init_conv, downs, mid, ups fed skips.pop(), final_res, final_conv)",
        mistakes={
            "t - 1 embedded: pass num_steps as it is": reference(images, t - 1),
            "t scaled by T: pass num_steps as it is, the embedding handles large t": reference(images, t / 1000),
        },
    )

    # 2. a small model with other sizes, randomized weights, and images that are not square
    small = ref.UnetConfig(image_shape=(2, 8, 12), channels=8, dim_mults=(1, 2, 2), groups=2, attention_levels=(1, 2))
    what = "Unet(UnetConfig((2, 8, 12), channels=8, dim_mults=(1, 2, 2), groups=2))"
    torch.manual_seed(1)
    reference = perturbed(ref.Unet(small), seed=2)
    model = call(what, lambda: Unet(small))
    expect_same_structure(reference, model, what)
    copy_weights(reference, model, what)
    images = randn(3, 2, 8, 12, seed=3)
    t = torch.tensor([1, 10, 1000])
    got = call(
        f"{what} on images of shape (3, 2, 8, 12)",
        model,
        images,
        t,
        likely="the skips used in the wrong order: the first UpBlock takes the last (deepest) skip, skips.pop()",
    )
    expect_close(
        got,
        reference(images, t),
        f"{what}, with the reference's weights",
        atol=DEEP_ATOL,
        rtol=DEEP_RTOL,
        likely="build the levels from channels * dim_mults, as the docstring says; attention only in attention_levels",
    )
    expect(
        not torch.allclose(got, call(what, model, images, torch.tensor([500, 500, 500]))),
        f"{what} gives the same output for different t.",
        "an output that depends on t",
        "the same output",
        "the time embedding is never passed to the blocks",
    )

    # 3. every parameter gets a gradient
    model.zero_grad()
    (model(images, t) ** 2).mean().backward()
    for name, p in model.named_parameters():
        if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0:
            fail(
                f"{what}: the parameter {name} gets no gradient.",
                "a nonzero gradient for every parameter",
                "None" if p.grad is None else _grad_state(p.grad),
                "a layer created in __init__ but never used in forward, or a .detach() / torch.no_grad() on its path",
            )

    # 4. a few Adam steps on one small batch lower the loss
    torch.manual_seed(4)
    model = Unet(
        ref.UnetConfig(image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), groups=2),
        part1.NoiseSchedule(part1.linear_schedule(3)),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, noise = randn(8, 1, 8, 8, seed=5), randn(8, 1, 8, 8, seed=6)
    t = torch.arange(1, 9) * 100
    losses = []
    for _ in range(8):
        loss = F.mse_loss(model(images, t), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    expect(
        losses[-1] < 0.95 * losses[0],
        "Unet((1, 8, 8), channels=8, dim_mults=(1, 2)): 8 Adam steps on one batch should lower its loss.",
        f"a loss below {0.95 * losses[0]:.4f}",
        f"losses {[round(v, 4) for v in losses]}",
        "gradients do not reach the weights, or the output does not depend on them",
    )

    # 5. Part 1's train and sample take it as they are
    trained = part1.train(
        model, TrainConfig(epochs=1, batch_size=4, device="cpu", seed=0), randn(8, 1, 8, 8, seed=7).clamp(-1, 1)
    )
    samples = part1.sample(trained, 2)
    expect_tensor(samples, "sample(Unet((1, 8, 8), ...) after Part 1's train, 2)", shape=(2, 1, 8, 8), floating=True)


def _grad_state(grad: Tensor) -> str:
    return "all zeros" if grad.abs().sum() == 0 else "NaN or inf"
