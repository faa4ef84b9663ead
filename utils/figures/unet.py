"""Figures and tables for Part 2: the U-Net's layout, its blocks, the time embedding, SiLU, and a parameter table.

The drawings are computed from sizes alone (no model is built), so the notebook can show them before any exercise
is done. The plots of the embedding and the activation take the student's own module or function. Every function
that draws returns its matplotlib figure.
"""

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import Tensor, nn

DOWN_COLOR, MID_COLOR, UP_COLOR, IO_COLOR = "#cfe2f3", "#f4cccc", "#d9ead3", "#eeeeee"
ATTENTION_EDGE = "#cc0000"


# --------------------------------------------------------------------------------------------------------------------
# The whole U-Net


def unet_levels(image_shape: tuple[int, int, int], channels: int, dim_mults: Sequence[int]) -> list[dict]:
    """Channels and resolution of each level of the reference U-Net, from its sizes alone.

    Returns one dict per level i: `channels` (channels * dim_mults[i]), `in_channels` (what its DownBlock takes in
    and its UpBlock gives out), `height`, `width` (H and W halve from one level to the next).
    """
    _, height, width = image_shape
    dims = [channels * m for m in dim_mults]
    in_dims = [channels] + dims[:-1]
    return [
        {"channels": dims[i], "in_channels": in_dims[i], "height": height // 2**i, "width": width // 2**i}
        for i in range(len(dims))
    ]


def _box(
    ax,
    x: float,
    y: float,
    text: str,
    color: str,
    width: float = 2.3,
    height: float = 0.62,
    attention: bool = False,
    fontsize: float = 8.5,
) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.04",
            facecolor=color,
            edgecolor=ATTENTION_EDGE if attention else "#444444",
            linewidth=2.2 if attention else 1.0,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(
    ax,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    color: str = "#333333",
    style: str = "-|>",
    curve: float = 0.0,
    label_offset: tuple[float, float] = (0.08, 0.0),
    linestyle: str = "-",
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=12,
            color=color,
            linewidth=1.2,
            connectionstyle=f"arc3,rad={curve}",
            linestyle=linestyle,
        )
    )
    if label:
        ax.text(
            (start[0] + end[0]) / 2 + label_offset[0],
            (start[1] + end[1]) / 2 + label_offset[1],
            label,
            fontsize=7.5,
            color=color,
            ha="left" if label_offset[0] >= 0 else "right",
            va="center",
        )


def _shape(c: int, h: int, w: int) -> str:
    return f"{c}×{h}×{w}"


def draw_unet(
    image_shape: tuple[int, int, int] = (1, 28, 28),
    channels: int = 28,
    dim_mults: Sequence[int] = (1, 2, 4),
    attention_levels: Sequence[int] = (1, 2),
    **_ignored,
):
    """The U-Net as a U: encoder down the left, bottleneck at the bottom, decoder up the right, skips across.

    Arrows carry the shape (channels × H × W) of what flows along them; blocks with self-attention have a red
    frame. Takes the fields of a `UnetConfig` (`draw_unet(**dataclasses.asdict(config))`); others are ignored.
    """
    img_channels, height, width = image_shape
    levels = unet_levels(image_shape, channels, dim_mults)
    n = len(levels)
    fig, ax = plt.subplots(figsize=(11, 1.55 * (n + 2)))
    left, right, mid_x = 0.0, 7.0, 3.5
    y = {i: -1.3 * (i + 1) for i in range(n)}
    top, bottom = 0.0, -1.3 * (n + 1)

    _box(ax, left, top, f"input x_t\n{_shape(img_channels, height, width)}", IO_COLOR, width=1.9)
    _box(ax, left + 2.2, top, f"init_conv 7×7\n{img_channels} → {channels} ch", IO_COLOR, width=1.9)
    _arrow(ax, (left + 0.95, top), (left + 1.25, top))
    _box(
        ax,
        mid_x,
        top + 1.0,
        f"t → sinusoidal → Linear → GELU → Linear\nt_emb ({4 * channels} numbers), given to every residual block",
        "#fff2cc",
        width=4.6,
    )
    _arrow(
        ax,
        (left + 2.2, top - 0.31),
        (left + 0.4, y[0] + 0.31),
        _shape(channels, height, width),
        label_offset=(-0.05, 0.1),
    )

    for i, level in enumerate(levels):
        c, h, w = level["channels"], level["height"], level["width"]
        last = i == n - 1
        attention = i in attention_levels
        _box(
            ax,
            left,
            y[i],
            f"downs[{i}]: DownBlock\n{level['in_channels']} → {c} ch, {h}×{w}"
            + ("" if last else "\nthen 4×4 conv, stride 2"),
            DOWN_COLOR,
            attention=attention,
        )
        _box(
            ax,
            right,
            y[i],
            f"ups[{n - 1 - i}]: UpBlock\ncat → {2 * c} ch → {level['in_channels']} ch"
            + ("" if i == 0 else "\nthen 4×4 transposed conv"),
            UP_COLOR,
            attention=attention,
        )
        _arrow(
            ax,
            (left + 1.2, y[i]),
            (right - 1.2, y[i]),
            f"skip {_shape(c, h, w)}",
            color="#1f5fbf",
            linestyle="--",
            label_offset=(-0.45, 0.13),
        )
        below = (left, y[i + 1] + 0.31) if not last else (mid_x - 1.2, bottom)
        out_h, out_w = (h // 2, w // 2) if not last else (h, w)
        _arrow(ax, (left, y[i] - 0.31), below, _shape(c, out_h, out_w), label_offset=(0.08, 0.0))
        above = (right, y[i - 1] - 0.31) if i > 0 else (right, top - 0.31)
        up_h, up_w = (h * 2, w * 2) if i > 0 else (h, w)
        _arrow(ax, (right, y[i] + 0.31), above, _shape(level["in_channels"], up_h, up_w), label_offset=(0.08, 0.0))

    c_mid = levels[-1]
    _box(
        ax,
        mid_x,
        bottom,
        f"MidBlock\n{c_mid['channels']} ch, {c_mid['height']}×{c_mid['width']}\nres → attention → res",
        MID_COLOR,
        attention=True,
    )
    _arrow(
        ax,
        (mid_x + 1.2, bottom),
        (right, y[n - 1] - 0.31),
        _shape(c_mid["channels"], c_mid["height"], c_mid["width"]),
        label_offset=(0.1, -0.2),
    )
    _box(ax, right, top, f"final_res + 1×1 conv\n{channels} → {img_channels} ch", IO_COLOR, width=2.0)
    _box(ax, right + 2.2, top, f"predicted noise\n{_shape(img_channels, height, width)}", IO_COLOR, width=1.9)
    _arrow(ax, (right + 1.0, top), (right + 1.25, top))

    ax.text(
        mid_x,
        bottom - 0.75,
        "red frame: block with self-attention   dashed: skip connection (concatenated)",
        ha="center",
        fontsize=8,
        color="#555555",
    )
    ax.set_xlim(left - 1.5, right + 3.4)
    ax.set_ylim(bottom - 1.0, top + 1.5)
    ax.axis("off")
    ax.set_title(
        f"The U-Net for {img_channels}×{height}×{width} images (channels={channels}, dim_mults={tuple(dim_mults)})"
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------------------------
# The blocks


def _chain(
    ax,
    title: str,
    steps: list[str],
    side: dict[int, str] | None = None,
    residual: tuple[int, int] | None = None,
    residual_label: str = "",
) -> None:
    """A column of boxes, top to bottom, with optional inputs from the side and a residual path around them."""
    side = side or {}
    ys = [-0.9 * k for k in range(len(steps))]
    for k, (text, y) in enumerate(zip(steps, ys)):
        color = IO_COLOR if k in (0, len(steps) - 1) else "#ffffff"
        _box(ax, 0.0, y, text, color, width=3.0, height=0.5, fontsize=7.5)
        if k:
            _arrow(ax, (0.0, ys[k - 1] - 0.25), (0.0, y + 0.25))
    for k, text in side.items():
        _box(ax, -2.85, ys[k], text, "#fff2cc", width=1.9, height=0.5, fontsize=7.5)
        _arrow(ax, (-1.9, ys[k]), (-1.5, ys[k]))
    if residual is not None:
        start, end = residual
        _arrow(
            ax, (1.5, ys[start]), (1.5, ys[end]), residual_label, color="#1f5fbf", curve=-0.35, label_offset=(0.45, 0.0)
        )
    ax.set_title(title, fontsize=10)
    ax.set_xlim(-3.9, 3.9)
    ax.set_ylim(ys[-1] - 0.5, 0.5)
    ax.axis("off")


def draw_blocks():
    """The insides of the four kinds of block, each as a column of steps with its residual or skip path."""
    fig, axes = plt.subplots(1, 4, figsize=(18, 5.2))
    _chain(
        axes[0],
        "ResidualBlock(in, out)",
        [
            "x: in × H × W",
            "conv 3×3 → GroupNorm → SiLU",
            "+ time, one value per channel",
            "conv 3×3 → GroupNorm → SiLU",
            "+ res_conv(x)",
            "out × H × W",
        ],
        side={2: "t_emb → SiLU\n→ Linear"},
        residual=(0, 4),
        residual_label="x, or 1×1 conv\nwhen in ≠ out",
    )
    _chain(
        axes[1],
        "AttentionBlock(C)",
        ["x: C × H × W", "GroupNorm, one group", "self-attention over\nthe H·W positions", "+ x", "C × H × W"],
        residual=(0, 3),
        residual_label="x",
    )
    _chain(
        axes[2],
        "DownBlock(in, out)",
        [
            "x: in × H × W",
            "ResidualBlock(in, out)",
            "ResidualBlock(out, out)",
            "attention (some levels)",
            "conv 4×4, stride 2",
            "out × H/2 × W/2",
        ],
        side={1: "t_emb", 2: "t_emb"},
        residual=(3, 5),
        residual_label="skip: out × H × W\n(before downsampling)",
    )
    _chain(
        axes[3],
        "UpBlock(in, out)",
        [
            "x: in × H × W",
            "concatenate skip → 2·in ch",
            "ResidualBlock(2·in, out)",
            "ResidualBlock(out, out)",
            "attention (some levels)",
            "transposed conv 4×4, stride 2",
            "out × 2H × 2W",
        ],
        side={1: "skip:\nin × H × W", 2: "t_emb", 3: "t_emb"},
    )
    fig.suptitle("Inside the blocks (blue: paths around the main line; yellow: inputs from the side)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------------------------
# The time embedding and the activation


@torch.no_grad()
def plot_time_embedding(embed: nn.Module, max_steps: int = 1000, dims: Sequence[int] | None = None):
    """The embeddings of t = 1..max_steps as a heat map (one row per t), and a few dimensions as curves of t.

    `embed` maps a (B,) tensor of steps to (B, E) features, sines first then cosines. `dims` are the dimensions drawn
    as curves; None picks four sines from fast to slow.
    """
    t = torch.arange(1, max_steps + 1)
    emb = embed(t).float().cpu()
    size = emb.shape[1]
    if dims is None:
        dims = sorted({round(size / 2 * share) for share in (0.2, 0.35, 0.5, 0.75)})
    fig, (heat, curves) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    image = heat.imshow(
        emb.numpy(),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        interpolation="nearest",
        extent=(-0.5, size - 0.5, max_steps + 0.5, 0.5),
    )
    heat.axvline(size / 2 - 0.5, color="black", linewidth=0.8)
    heat.set_xlabel(f"dimension (0..{size // 2 - 1}: sines, {size // 2}..{size - 1}: cosines)")
    heat.set_ylabel("t")
    heat.set_title("Every t gets its own row")
    fig.colorbar(image, ax=heat, fraction=0.04)
    for d in dims:
        if d < size:
            kind = "sin" if d < size // 2 else "cos"
            curves.plot(t.numpy(), emb[:, d].numpy(), label=f"dimension {d} ({kind})", linewidth=1.2)
    curves.set_xlabel("t")
    curves.set_title("Low dimensions change fast, high ones slowly")
    curves.legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_activations(swish: Callable[[Tensor], Tensor], lo: float = -5.0, hi: float = 5.0):
    """`swish` (SiLU) against ReLU on [lo, hi], with their slopes."""
    x = torch.linspace(lo, hi, 401, requires_grad=True)
    y = swish(x)
    (slope,) = torch.autograd.grad(y.sum(), x)
    x_np, relu = x.detach().numpy(), torch.relu(x.detach()).numpy()
    fig, (values, slopes) = plt.subplots(1, 2, figsize=(11, 3.8))
    values.plot(x_np, relu, label="ReLU", color="gray", linestyle="--")
    values.plot(x_np, y.detach().numpy(), label="SiLU = x · sigmoid(x)", color="C3")
    values.axhline(0, color="black", linewidth=0.5)
    minimum = y.detach().min().item()
    values.set_title(f"SiLU dips below zero (its minimum is {minimum:.3f}) and is smooth at 0")
    values.legend()
    slopes.plot(x_np, (x_np > 0).astype(float), label="ReLU'", color="gray", linestyle="--")
    slopes.plot(x_np, slope.numpy(), label="SiLU'", color="C3")
    slopes.set_title("Slopes: ReLU's jumps from 0 to 1, SiLU's is continuous")
    slopes.legend()
    for ax in (values, slopes):
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------------------------
# Parameter table


def _shape_of(output) -> str:
    if isinstance(output, Tensor):
        return "×".join(str(d) for d in output.shape[1:])
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape_of(o) for o in output)
    return "?"


@torch.no_grad()
def parameter_table(model: nn.Module, image_shape: tuple[int, int, int] | None = None) -> str:
    """A text table of the model's blocks: output shape (for one image), parameter count and share of the total.

    Rows are the model's children, with ModuleLists (the down and up blocks) opened one level. Output shapes come
    from one forward pass of a zero image at t = 1 through `model(images, num_steps)`.
    """
    image_shape = image_shape or model.image_shape
    rows = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            rows.extend((f"{name}[{i}]", sub) for i, sub in enumerate(child))
        else:
            rows.append((name, child))
    shapes: dict[str, str] = {}

    def record(name: str):
        def hook(module, args, output) -> None:  # returns None: a forward hook's return value replaces the output
            shapes.setdefault(name, _shape_of(output))

        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in rows]
    try:
        model(torch.zeros(1, *image_shape), torch.ones(1, dtype=torch.long))
    finally:
        for hook in hooks:
            hook.remove()
    total = sum(p.numel() for p in model.parameters())
    lines = [f"{'block':<12} {'kind':<14} {'output (C×H×W)':<22} {'parameters':>11} {'share':>7}", "-" * 70]
    for name, module in rows:
        count = sum(p.numel() for p in module.parameters())
        lines.append(
            f"{name:<12} {type(module).__name__:<14} {shapes.get(name, '-'):<22} {count:>11,} "
            f"{100 * count / max(total, 1):>6.1f}%"
        )
    lines += ["-" * 70, f"{'total':<12} {'':<14} {'':<22} {total:>11,} {100.0:>6.1f}%"]
    return "\n".join(lines)


def attention_cost(height: int, width: int, channels: int, batch_size: int = 128, num_heads: int = 4) -> str:
    """What one self-attention layer costs at this resolution: the size of its weights (B, heads, N, N) in float32,
    and the multiply-adds of q k^T and weights @ v (2 B N^2 C each, whatever the number of heads)."""
    n = height * width
    mib = batch_size * num_heads * n * n * 4 / 2**20
    gflop = 2 * 2 * batch_size * n * n * channels / 1e9
    return (
        f"{height:>2}×{width:<2} map, {channels:>3} channels: N = {n:>3} positions, attention weights "
        f"{mib:>6,.0f} MiB, {gflop:5.1f} GFLOP per forward pass (batch {batch_size})"
    )
