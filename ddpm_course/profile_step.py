"""One training step of a U-Net, taken apart: what it computes, how many kernels it launches, where the time goes.

    python -m ddpm_course.profile_step                          # our Unet (Part 2's defaults), batch 128
    python -m ddpm_course.profile_step --models ours,ours+fused,peer   # with the fused twins; diffusers' peer

The step is what `fit` does once: the reference `diffusion_loss` (Algorithm 1, lines 2-5), backward, an Adam step and
the weight average's update. It prints

    FLOPs       of the convolutions and matrix products, forward and backward (`torch.utils.flop_counter`)
    ops         aten operations that launch work (views excluded): on a GPU each is at least one kernel
    by kind     the forward's ops and, on a CPU, their time, by the block they ran in (GroupNorm, attention, ...)
    kernels     on a GPU, the kernels one step launches, traced
    syncs       reads of a device value by the host (`.item()` and the like): each one stalls a GPU's queue
    bytes       what the forward saves for the backward, and what the ops read and write if none of them is fused
    floor       FLOPs over the device's matrix rate and the fewest bytes over its copy bandwidth, both measured here
    time        the median step, measured, beside the floor

The ceilings are measured in the same run, on the same device, so the floor means something on any machine.
"""

import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ddpm_course.benchmark import INSTALL_HINT, DiffusersPeer, PeerConfig, peer_available, synchronize
from ddpm_course.runs import (
    PART3_NEEDS,
    Implementation,
    add_run_arguments,
    default_run,
    impl_help,
    make_unet,
    program_parser,
)
from ddpm_course.speed import fuse_blocks, tune_for
from utils import get_device
from utils.engine.training import bf16_autocast, weight_average

# Operations that only re-describe memory: no kernel runs for them.
VIEWS = {
    "alias", "as_strided", "detach", "expand", "permute", "reshape", "select", "slice", "split", "split_with_sizes",
    "squeeze", "t", "transpose", "unbind", "unflatten", "unsqueeze", "view", "_unsafe_view", "_reshape_alias",
}  # fmt: skip
SYNCS = {"_local_scalar_dense", "item", "is_nonzero", "nonzero"}
# The block an operation ran in, by the class name of the innermost module that names one; ours and diffusers'.
KINDS = {
    "GroupNorm": "group norm",
    "FusedGroupNorm": "group norm",
    "FusedSelfAttention": "attention",
    "SelfAttention": "attention",
    "Attention": "attention",
    "Conv2d": "convolution",
    "ConvTranspose2d": "convolution",
    "Linear": "linear",
}


def tensor_bytes(values) -> int:
    leaves = values if isinstance(values, (list, tuple)) else [values]
    return sum(v.numel() * v.element_size() for v in leaves if isinstance(v, torch.Tensor))


class OpCounter(TorchDispatchMode):
    """Counts every aten operation that does work, and the bytes it reads and writes, by phase and block kind.

    Ours because `torch.profiler` counts operations but neither attributes them to the block they ran in nor adds up
    the bytes they move; a dispatch mode sees each operation with its tensors, on any device.
    """

    def __init__(self, timed: bool):
        super().__init__()
        self.timed = timed  # per-op wall time is the op's time only where ops run synchronously: the CPU
        self.phase = "forward"
        self.kind_stack: list[str] = []
        self.ops: Counter = Counter()  # (phase, kind) -> operations
        self.seconds: Counter = Counter()  # (phase, kind) -> seconds
        self.syncs: Counter = Counter()  # phase -> reads of a device value by the host
        self.bytes_read = 0
        self.bytes_written = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        began = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        if name in VIEWS:
            return out
        key = (self.phase, self.kind_stack[-1] if self.kind_stack and self.phase == "forward" else "")
        self.seconds[key] += time.perf_counter() - began
        self.ops[key] += 1
        self.syncs[self.phase] += name in SYNCS
        self.bytes_read += sum(tensor_bytes(a) for a in list(args) + list((kwargs or {}).values()))
        self.bytes_written += tensor_bytes(out)
        return out


@contextmanager
def kinds_tracked(model: nn.Module, counter: OpCounter):
    """Tell `counter` which kind of block each forward operation runs in, by hooks on the blocks that name one."""

    def enter(module, inputs):
        counter.kind_stack.append(KINDS[type(module).__name__])

    def leave(module, inputs, output):
        counter.kind_stack.pop()

    handles = []
    for module in model.modules():
        if type(module).__name__ in KINDS:
            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def saved_bytes_counted(total: list[int]):
    """Add up the bytes the forward keeps for the backward (each storage once)."""
    seen: set[int] = set()

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total[0] += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield


def ceilings(device: torch.device) -> tuple[float, float]:
    """(matrix FLOP/s, copy bytes/s) measured on `device`: bf16 products on a GPU, float32 on a CPU."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    big = torch.randn((2**28 if device.type == "cuda" else 2**25) // 4, device=device)
    copy = torch.empty_like(big)

    def best_of(fn, repeats=5) -> float:
        fn()
        synchronize(device)
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - began)
        return min(times)

    flops = 2 * n**3 / best_of(lambda: a @ b)
    bandwidth = 2 * tensor_bytes(big) / best_of(lambda: copy.copy_(big))
    return flops, bandwidth


def traced_on_cuda(step: Callable[[], None], device: torch.device) -> tuple[int, int]:
    """(kernels launched, host syncs) in one `step()` on a CUDA device: traced by the profiler, and counted by CUDA's
    own sync check (`.item()`, a device-to-host copy and the like: one warning each)."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as trace:
        step()
        synchronize(device)
    kernels = sum(1 for e in trace.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return kernels, len(caught)


def profile(label: str, model: nn.Module, impl: Implementation, mixed: bool, batch_size: int, steps: int, ceiling):
    """Print the anatomy of one training step of `model` (on its device), and return its median time in seconds."""
    device = model.device
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    ema = weight_average(model, 0.999)
    x_0 = torch.rand(batch_size, *model.image_shape, device=device) * 2 - 1

    def step(counter: OpCounter | None = None, saved: list[int] | None = None) -> None:
        with bf16_autocast(device, mixed), saved_bytes_counted(saved if saved is not None else [0]):
            loss = impl.diffusion_loss(model, x_0)
        if counter:
            counter.phase = "backward"
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if counter:
            counter.phase = "optimizer and average"
        optimizer.step()
        ema.update_parameters(model)

    for _ in range(3):
        step()
    counter, saved = OpCounter(timed=device.type == "cpu"), [0]
    with kinds_tracked(model, counter), counter:
        step(counter, saved)
    with FlopCounterMode(display=False) as flop_counter:
        step()
    flops = flop_counter.get_total_flops()
    kernels = None
    if device.type == "cuda":
        try:
            kernels, syncs = traced_on_cuda(step, device)
            counter.syncs = Counter({"CUDA sync warnings": syncs})
        except Exception as error:  # noqa: BLE001 - a profiler the machine refuses must not cost the other figures
            print(f"kernel trace not available here: {type(error).__name__}: {error}")
    times = []
    for _ in range(steps):
        synchronize(device)
        began = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - began)
    seconds = statistics.median(times)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"\n== {label}: {n_params / 1e6:.2f}M parameters, batch {batch_size}, bf16 autocast {mixed}")
    print(f"FLOPs per step     {flops / 1e9:10.1f} GFLOP  ({flops / batch_size / 1e6:.0f} MFLOP per image)")
    phases = Counter()
    for (phase, _), n in counter.ops.items():
        phases[phase] += n
    print(f"ops per step       {sum(phases.values()):10d}  ({', '.join(f'{p} {n}' for p, n in phases.items())})")
    if kernels is not None:
        print(f"GPU kernels        {kernels:10d}  (one step, traced)")
    syncs = ", ".join(f"{phase} {n}" for phase, n in counter.syncs.items() if n) or "none"
    print(f"host syncs         {sum(counter.syncs.values()):10d}  ({syncs})")
    forward = {kind or "elementwise and other": n for (phase, kind), n in counter.ops.items() if phase == "forward"}
    forward_s = {
        kind or "elementwise and other": s for (phase, kind), s in counter.seconds.items() if phase == "forward"
    }
    total_s = sum(counter.seconds.values())
    print("forward ops by block" + ("  (and share of the step's op time, CPU)" if counter.timed else ""))
    for kind, n in sorted(forward.items(), key=lambda kv: -kv[1]):
        share = f"{100 * forward_s[kind] / total_s:6.1f}%" if counter.timed else ""
        print(f"  {kind:<24}{n:6d}  {share}")
    if counter.timed:
        for phase in [p for p in phases if p != "forward"]:
            s = sum(v for (p, _), v in counter.seconds.items() if p == phase)
            print(f"  {phase + ' (all)':<24}{phases[phase]:6d}  {100 * s / total_s:6.1f}%")
    state_bytes = 13 * 4 * n_params  # float32 weights read twice, grad written, Adam 4 reads 3 writes, EMA 3
    floor_bytes = 2 * saved[0] + state_bytes
    print(f"saved for backward {saved[0] / 1e6:10.1f} MB")
    print(f"op traffic         {(counter.bytes_read + counter.bytes_written) / 1e9:10.2f} GB if no op were fused")
    peak_flops, bandwidth = ceiling
    flop_s, byte_s = flops / peak_flops, floor_bytes / bandwidth
    print(
        f"floor              {1e3 * max(flop_s, byte_s):10.2f} ms per step ({'FLOPs' if flop_s > byte_s else 'bytes'}"
        f"-bound: {1e3 * flop_s:.2f} ms of FLOPs, {1e3 * byte_s:.2f} ms for {floor_bytes / 1e6:.0f} MB)"
    )
    print(
        f"measured           {1e3 * seconds:10.2f} ms per step (median of {steps}), "
        f"{batch_size / seconds:.0f} images/s, {seconds / max(flop_s, byte_s):.1f}x the floor",
        flush=True,
    )
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = program_parser(__doc__, "python -m ddpm_course.profile_step")
    parser.add_argument("--models", default="ours", help="comma-separated: ours, ours+fused, peer")
    add_run_arguments(parser, impl=impl_help("Parts 1-3", "solutions"), device=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    add_run_arguments(parser, threads=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    impl = Implementation.load(args.impl, PART3_NEEDS)
    device = get_device(args.device)
    run = default_run(device, impl.UnetConfig)
    run = replace(run, unet=impl.UnetConfig())  # Part 2's default sizes
    mixed = run.fit.mixed_precision and device.type == "cuda"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    tune_for(device)  # as `fit` does
    ceiling = ceilings(device)
    print(f"{device} ({name}), torch {torch.__version__}")
    print(f"ceilings measured: {ceiling[0] / 1e12:.2f} TFLOP/s matrix, {ceiling[1] / 1e9:.0f} GB/s copy")
    for label in args.models.split(","):
        torch.manual_seed(0)
        if label.startswith("ours"):
            model = make_unet(run, impl).to(device).train()
            if label == "ours+fused":
                print(fuse_blocks(model))
        elif label == "peer" and not peer_available():
            print(f"(the peer needs diffusers: {INSTALL_HINT})")
            continue
        elif label == "peer":
            schedule = impl.NoiseSchedule(impl.linear_schedule(run.max_steps))
            model = DiffusersPeer(PeerConfig(), schedule).to(device).train()
        else:
            parser.error(f"--models: {label!r} is none of ours, ours+fused, peer")
        profile(label, model, impl, mixed, args.batch_size, args.steps, ceiling)
    return 0


if __name__ == "__main__":
    sys.exit(main())
