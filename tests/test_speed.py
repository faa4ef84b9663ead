"""The CUDA path's speed-ups, exercised on a CPU: fused twins proven equal, the guarded compile, bf16 autocast,
channels_last, and the benchmark and step profile that measure them. CI has no GPU; everything here runs without one."""

import contextlib
import re

import pytest
import torch
from torch import Tensor, nn

from ddpm_course.speed import SpeedConfig, compile_model, fuse_blocks
from solutions.part1 import diffusion_loss
from solutions.part2 import GroupNorm, SelfAttention, Unet
from tests.test_part3_pipeline import CONFIG, TINY_BENCHMARK, outputs, tiny_images, tiny_unet, train_tiny
from tests.variants_part2 import GroupNormUnbiased
from utils.engine import training
from utils.engine.checkpoints import load_checkpoint
from utils.engine.training import FitConfig, RunLog, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def loss_and_grads(model: nn.Module) -> tuple[Tensor, list[Tensor]]:
    torch.manual_seed(3)
    model.zero_grad()
    loss = diffusion_loss(model, tiny_images(8))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


# --------------------------------------------------------------------------------------------------------------------
# Fused twins


def test_fused_twins_compute_what_the_hand_written_blocks_compute():
    model = tiny_unet()
    keys = list(model.state_dict())
    before, (loss, grads) = outputs(model), loss_and_grads(model)
    report = fuse_blocks(model)
    assert re.search(r"\d+ GroupNorm, \d+ SelfAttention, \d+ ResidualBlock", report) and "kept" not in report
    assert not any(type(m) in (GroupNorm, SelfAttention) for m in model.modules())
    torch.testing.assert_close(outputs(model), before, rtol=1e-4, atol=1e-5)
    fused_loss, fused_grads = loss_and_grads(model)
    torch.testing.assert_close(fused_loss, loss, rtol=1e-4, atol=1e-6)
    for fused, plain in zip(fused_grads, grads, strict=True):
        torch.testing.assert_close(fused, plain, rtol=1e-3, atol=1e-5)
    assert list(model.state_dict()) == keys  # same parameter names: checkpoints load either way
    assert fuse_blocks(model) == "fused twins: none (39 already in place)"  # a resumed run fuses nothing twice
    plain = tiny_unet()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(outputs(plain), before, rtol=1e-4, atol=1e-5)


class UnbiasedGroupNorm(GroupNormUnbiased):
    """A common mistake: the unbiased variance (divide by n - 1), which nn.GroupNorm does not use."""


UnbiasedGroupNorm.__name__ = "GroupNorm"


class SeparateProjections(nn.Module):
    """A correct attention with another layout than the twin's: three projections instead of one qkv_proj."""

    def __init__(self, channels: int, num_heads: int = 4):
        super().__init__()
        self.num_heads, self.head_size = num_heads, channels // num_heads
        self.q, self.k, self.v = (nn.Linear(channels, channels) for _ in range(3))

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        out = nn.functional.scaled_dot_product_attention(self.q(tokens), self.k(tokens), self.v(tokens))
        return out.transpose(1, 2).reshape(x.shape)


SeparateProjections.__name__ = "SelfAttention"


def test_a_block_that_computes_something_else_is_kept_and_named():
    model = tiny_unet()
    model.downs[0].res1.norm1 = UnbiasedGroupNorm(4, 8)
    model.mid.attn.attention = SeparateProjections(16)
    report = fuse_blocks(model)
    assert "downs.0.res1.norm1 (GroupNorm): computes something else" in report
    assert "mid.attn.attention (SelfAttention): not the layout the twin expects" in report
    assert type(model.downs[0].res1.norm1) is UnbiasedGroupNorm
    assert type(model.mid.attn.attention) is SeparateProjections
    # the residual block around the kept norm is fused with it inside: the norm still runs as written
    assert model.downs[0].res1.norm1 is model.get_submodule("downs.0.res1.norm1")
    before = outputs(model)
    trained = train_tiny(model, fused_blocks=True)  # a student's own blocks still train, only slower
    assert torch.isfinite(outputs(trained)).all() and not torch.equal(outputs(trained), before)


def test_a_block_with_extra_state_is_kept_so_checkpoints_still_match():
    model = tiny_unet()
    model.mid.res1.norm1.register_buffer("calls", torch.zeros(()))
    report = fuse_blocks(model)
    assert "mid.res1.norm1 (GroupNorm): holds parameters or buffers" in report
    assert "calls" in "".join(model.state_dict())


# --------------------------------------------------------------------------------------------------------------------
# Compiling, bf16 and channels_last through `fit`


def test_compile_falls_back_to_eager_where_nothing_can_compile(monkeypatch, capsys):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    model = tiny_unet()
    assert "not available here, training eagerly (RuntimeError: no C++ compiler found)" in compile_model(model)
    trained = train_tiny(tiny_unet(), compile="default", drop_last=True)
    assert "training eagerly" in capsys.readouterr().out
    assert torch.isfinite(outputs(trained)).all()


def test_compiled_training_runs_and_its_checkpoint_loads_uncompiled(monkeypatch, tmp_path, capsys):
    # The "eager" backend runs dynamo's tracing and graph capture without generating code: the path, minus the wait.
    real_compile = torch.compile
    traced = []

    def eager_backend(fn, mode=None, **kwargs):
        traced.append(mode)
        return real_compile(fn, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_backend)
    path = tmp_path / "compiled.pt"
    batch_sizes = []

    def loss_seeing_batches(model, x_0):
        batch_sizes.append(len(x_0))
        return diffusion_loss(model, x_0)

    extras = FitConfig(progress=False, drop_last=True, ema_decay=0.9, checkpoint_path=str(path))
    speed = SpeedConfig(compile="default", fused_blocks=True)
    model = fit(tiny_unet(), loss_seeing_batches, tiny_images(36), CONFIG, extras, prepare=speed.prepare)
    assert "torch.compile, mode default" in capsys.readouterr().out and len(traced) >= 2
    # one batch shape, so the step never compiles again: the 4 left over wait for the next epoch's shuffle
    assert batch_sizes == [8, 8, 8, 8]
    assert not any("_orig_mod" in key for key in model.state_dict())
    loaded = load_checkpoint(path, "cpu", Unet, type(model.noise_schedule)).model
    torch.testing.assert_close(outputs(loaded), outputs(model), rtol=1e-4, atol=1e-5)


def test_bf16_autocast_and_channels_last_train_off_the_gpu(monkeypatch, tmp_path):
    # bf16_autocast is a no-op on a CPU (slow there); CPU autocast runs the same code path in bf16 for this test.
    def cpu_bf16(device, enabled=True):
        return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()

    monkeypatch.setattr(training, "bf16_autocast", cpu_bf16)
    conv_dtypes = []

    def loss_seeing_dtypes(model, x_0):
        hook = model.init_conv.register_forward_hook(lambda module, args, out: conv_dtypes.append(out.dtype))
        try:
            return diffusion_loss(model, x_0)
        finally:
            hook.remove()

    path = tmp_path / "bf16.pt"
    extras = FitConfig(progress=False, mixed_precision=True, ema_decay=0.9, checkpoint_path=str(path))
    speed = SpeedConfig(channels_last=True, fused_blocks=True)
    log = RunLog(CONFIG)
    model = fit(tiny_unet(), loss_seeing_dtypes, tiny_images(), CONFIG, extras, log=log, prepare=speed.prepare)
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}  # the network ran in bf16 ...
    assert all(p.dtype == torch.float32 for p in model.parameters())  # ... and its weights stayed float32
    assert model.init_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(0 < loss < 10 for _, loss in log.history["loss"])
    loaded = load_checkpoint(path, "cpu", Unet, type(model.noise_schedule)).model
    torch.testing.assert_close(outputs(loaded), outputs(model), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# The measuring programs, tiny


def test_step_profile_counts_fewer_ops_with_the_fused_twins(capsys, monkeypatch):
    from ddpm_course import profile_step

    monkeypatch.setattr(profile_step, "ceilings", lambda device: (1e10, 1e10))  # measured elsewhere; seconds here
    assert (
        profile_step.main(["--device", "cpu", "--models", "ours,ours+fused", "--batch-size", "2", "--steps", "1"]) == 0
    )
    printed = capsys.readouterr().out
    ops = [int(n) for n in re.findall(r"forward (\d+), backward", printed)]
    assert len(ops) == 2 and ops[1] < ops[0] / 2, printed
    assert "FLOPs per step" in printed and "saved for backward" in printed and "x the floor" in printed


def test_step_profile_without_diffusers_says_how_to_get_the_peer_and_profiles_the_rest(capsys, monkeypatch):
    from ddpm_course import profile_step

    monkeypatch.setattr(profile_step, "ceilings", lambda device: (1e10, 1e10))
    monkeypatch.setattr(profile_step, "peer_available", lambda: False)
    args = ["--device", "cpu", "--models", "peer,ours", "--batch-size", "2", "--steps", "1"]
    assert profile_step.main(args) == 0
    printed = capsys.readouterr().out
    assert "the peer needs diffusers" in printed and "FLOPs per step" in printed, printed


@pytest.mark.parametrize(
    "setting, model, message",
    [
        ("fast", "ours", "join any of fused, cl, compile, graphs"),
        ("eager+fused", "ours", "or say eager"),
        ("fused", "peer", "the fused twins are ours"),
        ("compile+graphs", "ours", "compile or graphs, not both"),
    ],
)
def test_benchmark_settings_are_checked(setting, model, message):
    from ddpm_course.benchmark import parse_setting

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_setting(setting, model)


def test_benchmark_settings_name_the_speed_ups():
    from ddpm_course.benchmark import parse_setting

    speed = parse_setting("fused+cl+graphs", "ours")
    assert speed.fused_blocks and speed.channels_last and speed.compile == "reduce-overhead"
    assert parse_setting("eager", "peer").compile is None


def test_benchmark_keeps_the_fid_runs_time_and_says_what_it_left_out(capsys, monkeypatch):
    from ddpm_course import benchmark

    monkeypatch.setattr(benchmark, "peer_available", lambda: False)
    assert benchmark.main([*TINY_BENCHMARK, "--no-fid", "--ours", "eager,fused", "--total-s", "0.001"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"our Unet \(Part 2\)\s+eager\s+1\.67M", printed)  # each model keeps its first setting
    assert "not measured, to leave the FID run its time (--total-s): ours fused" in printed


def test_minibatches_can_keep_every_batch_full():
    from utils.engine.training import minibatches

    images = tiny_images(36)
    assert [len(b) for b in minibatches(images, 8, drop_last=True)] == [8, 8, 8, 8]
    assert [len(b) for b in minibatches(images, 8)] == [8, 8, 8, 8, 4]


def test_cudnn_autotuning_is_switched_on_for_cuda_only(monkeypatch):
    from ddpm_course.speed import tune_for

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    tune_for(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    tune_for(torch.device("cuda"))  # sets a flag only: no GPU needed
    assert torch.backends.cudnn.benchmark is True


@pytest.mark.filterwarnings("ignore:CUDA is not available, disabling CUDA profiling")
def test_the_cuda_trace_counts_kernels_and_sync_warnings(monkeypatch):
    import warnings

    from ddpm_course.profile_step import traced_on_cuda

    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)  # CUDA's own check, absent on a CPU build

    def step():
        torch.ones(3).sum()
        if modes and modes[-1] == "warn":
            warnings.warn("called a synchronizing CUDA operation", stacklevel=2)

    assert traced_on_cuda(step, torch.device("cpu")) == (0, 1)  # no CUDA kernels on a CPU; the one sync warning
    assert modes == ["warn", "default"]  # and the check is switched off again
