"""Making a trained U-Net fast without changing what it computes: fused twins of its blocks, and a guarded compile.

Part 2 has you write GroupNorm, swish and attention out of elementary tensor operations, because that is how you
learn what they do. On a GPU each elementary operation is a kernel launch and a round trip through memory: one
hand-written GroupNorm is about ten of them, where `F.group_norm` is one. For long runs the given code can swap a
block for its *fused twin*, the same function written with torch's fused kernels, sharing the block's own parameters:

    GroupNorm       -> F.group_norm
    SelfAttention   -> F.scaled_dot_product_attention (a flash or memory-efficient kernel on a GPU)
    ResidualBlock   -> the same convolutions and norms, with F.silu for swish

`fuse_blocks(model)` swaps a block only after proving, on random inputs at the block's own weights, that the twin
computes what the block computes; a block that differs (a variant of your own, or a bug) is kept as written and named
in the report, so your model still trains, only slower. Parameter names do not change, so checkpoints load either way.

`compile_model(model, mode)` runs `torch.compile` on the model where this machine can: it first compiles a
two-line probe, and where that fails (no C++ compiler on a CPU, no Triton for an old GPU) it says so and leaves the
model as it is. `tune_for(device)` lets cuDNN pick its fastest convolution algorithms.

`SpeedConfig` names the speed-ups of a run, and its `prepare` is the hook `fit` calls before training:

    fit(model, loss, images, config, extras, prepare=SpeedConfig(fused_blocks=True).prepare)

Each pays on a GPU, where kernel launches dominate; none changes what the model computes. The benchmark and the step
profile beside this file (`ddpm_course.benchmark`, `ddpm_course.profile_step`) measure them.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from utils.engine.model import DiffusionModel

# How close a twin must come to the block it replaces on random inputs: the two differ only in the order of their
# floating-point operations, so by a few units of rounding of the dtype the check runs in.
TWIN_TOLERANCE = {torch.float64: dict(rtol=1e-9, atol=1e-11), torch.float32: dict(rtol=1e-4, atol=1e-5)}


class FusedGroupNorm(nn.Module):
    """GroupNorm in one kernel, `F.group_norm`, with the original block's weight and bias (or none)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.num_groups, self.eps = block.num_groups, block.eps
        self.weight = getattr(block, "weight", None)
        self.bias = getattr(block, "bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def per_position(projection: nn.Module, x: Tensor) -> Tensor:
    """Apply a Linear(C, C') or a 1x1 Conv2d(C, C') at every position of x (B, C, H, W); returns (B, H * W, C')."""
    if isinstance(projection, nn.Conv2d):
        return rearrange(projection(x), "b c h w -> b (h w) c")
    return projection(rearrange(x, "b c h w -> b (h w) c"))


class FusedSelfAttention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention`, with the original block's projections."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.num_heads = block.num_heads
        self.qkv_proj, self.out_proj = block.qkv_proj, block.out_proj

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        qkv = per_position(self.qkv_proj, x)  # (B, N, 3C)
        q, k, v = rearrange(qkv, "b n (three heads d) -> three b heads n d", three=3, heads=self.num_heads)
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b heads n d -> b (heads d) n")
        out = rearrange(out, "b c (h w) -> b c h w", h=height, w=width)
        if isinstance(self.out_proj, nn.Conv2d):
            return self.out_proj(out)
        return rearrange(per_position(self.out_proj, out), "b (h w) c -> b c h w", h=height, w=width)


class FusedResidualBlock(nn.Module):
    """The residual block with `F.silu` for swish: one kernel per activation instead of two, and two in backward."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv1, self.norm1, self.time_proj = block.conv1, block.norm1, block.time_proj
        self.conv2, self.norm2, self.res_conv = block.conv2, block.norm2, block.res_conv

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        h = h + self.time_proj(F.silu(t_emb))[:, :, None, None]
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.res_conv(x)


def probe_inputs(block: nn.Module, kind: str, device: torch.device) -> tuple[Tensor, ...]:
    """Random inputs of the shapes `block` takes, small enough to check in a moment."""
    if kind == "GroupNorm":
        return (torch.randn(2, block.num_channels, 4, 4, device=device) * 3 + 1,)
    if kind == "SelfAttention":
        return (torch.randn(2, block.num_heads * block.head_size, 4, 4, device=device),)
    return (
        torch.randn(2, block.conv1.in_channels, 4, 4, device=device),
        torch.randn(2, block.time_proj.in_features, device=device),
    )


TWINS = {"GroupNorm": FusedGroupNorm, "SelfAttention": FusedSelfAttention, "ResidualBlock": FusedResidualBlock}


def probe_dtypes(device: torch.device) -> tuple[torch.dtype, ...]:
    """float64 first: there the twin and the block agree to rounding whatever kernels and TF32 settings the device
    uses, so a difference is the block's, not the hardware's. float32 where float64 is missing (MPS) or fails."""
    return (torch.float32,) if device.type == "mps" else (torch.float64, torch.float32)


@torch.no_grad()
def twin_if_equal(block: nn.Module, kind: str) -> tuple[nn.Module | None, str]:
    """The fused twin of `block` if it computes the same on random inputs, else None; and why not.

    The comparison runs on a copy of the block in the probe's dtype, so the model itself is never touched.
    """
    device = next(iter(block.parameters()), torch.empty(0)).device
    why = ""
    for dtype in probe_dtypes(device):
        try:
            copy_ = copy.deepcopy(block).to(dtype)
            twin = TWINS[kind](copy_)
            inputs = [x.to(dtype) for x in probe_inputs(block, kind, device)]
            with torch.autocast(device.type, enabled=False):
                expected, got = copy_(*inputs), twin(*inputs)
        except (AttributeError, TypeError, RuntimeError) as error:
            why = f"not the layout the twin expects ({type(error).__name__}: {error})"
            continue
        if set(twin.state_dict()) != set(copy_.state_dict()):
            return None, "holds parameters or buffers the twin has not: checkpoints would no longer match"
        if expected.shape != got.shape or not torch.allclose(got, expected, **TWIN_TOLERANCE[dtype]):
            differ = (got - expected).abs().max().item() if expected.shape == got.shape else math.inf
            return None, f"computes something else (largest difference {differ:.2g} in {dtype})"
        return TWINS[kind](block), ""
    return None, why


def fuse_blocks(model: nn.Module) -> str:
    """Swap every block of `model` that has a fused twin and computes what the twin computes; return a report.

    Blocks are found by their class names (GroupNorm, SelfAttention, ResidualBlock: Part 2's names, yours or the
    reference's). Norms go first, so a residual block is checked with its norms already fused.
    """
    swapped: dict[str, int] = {}
    kept: list[str] = []
    for kind in ("GroupNorm", "SelfAttention", "ResidualBlock"):
        for name, block in list(model.named_modules()):
            if type(block).__name__ != kind:
                continue
            twin, why = twin_if_equal(block, kind)
            if twin is None:
                kept.append(f"{name} ({kind}): {why}")
                continue
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, twin)
            swapped[kind] = swapped.get(kind, 0) + 1
    in_place = sum(isinstance(m, tuple(TWINS.values())) for m in model.modules()) - sum(swapped.values())
    report = "fused twins: " + (", ".join(f"{n} {kind}" for kind, n in swapped.items()) or "none")
    if in_place:
        report += f" ({in_place} already in place)"
    if kept:
        report += "; kept as written (slower, same training):\n  " + "\n  ".join(kept)
    return report


def tune_for(device: torch.device) -> None:
    """Let cuDNN time its convolution algorithms once per shape and keep the fastest: a training run repeats the same
    shapes thousands of times. A process-wide switch, and a no-op off CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compile_model(model: DiffusionModel, mode: str | None = None, device: torch.device | None = None) -> str:
    """`torch.compile` the model's forward in place where this machine can compile; return what happened.

    Compilation happens at the first call, deep inside training, so a missing tool chain would fail there; a tiny
    probe compiled first finds that out in a second or two, and then the model stays eager.
    """
    device = device or model.device
    try:
        probe = torch.compile(lambda x: torch.sin(x) * 2 + 1, mode=mode)
        probe(torch.randn(8, device=device))
    except Exception as error:  # noqa: BLE001 - any failure to compile means: run eagerly
        return f"torch.compile is not available here, training eagerly ({type(error).__name__}: {error})"
    model.compile(mode=mode)
    return f"torch.compile, mode {mode or 'default'}: the first steps compile (seconds to a minute)"


@dataclass(frozen=True)
class SpeedConfig:
    """The speed-ups of a training run, none of which changes what the model computes; `prepare` applies them.

    With `compile`, give `fit` FitConfig(drop_last=True): a compiled step is compiled for one batch shape, and a
    smaller last batch would compile it again.
    """

    fused_blocks: bool = False  # swap hand-written GroupNorm, attention, residual blocks for proven-equal fused twins
    compile: str | None = None  # a torch.compile mode ("default"; "reduce-overhead" adds CUDA graphs); None: eager
    channels_last: bool = False  # images and convolution weights stored (B, H, W, C), the layout tensor cores prefer

    def prepare(self, model: DiffusionModel, trainset: Tensor) -> tuple[DiffusionModel, Tensor]:
        """`fit`'s hook: the model and images (on the training device) with these speed-ups, reports printed."""
        tune_for(model.device)
        if self.fused_blocks:
            print(fuse_blocks(model))
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
            trainset = trainset.contiguous(memory_format=torch.channels_last)
        if self.compile:  # compiles at the first call: the weight average's copy never runs forward
            print(compile_model(model, self.compile))
        return model, trainset
