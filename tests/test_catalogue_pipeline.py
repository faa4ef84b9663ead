"""A step that passes its grader runs in the course: every correct way of writing a step, in each part's catalogue
(tests/variants_partN.py) and the reference, is fed through the code that uses it next (the given sampler or training
loop, with the real network at its smallest size), on the CPU and on the meta device, which stands in for a GPU: it
has shapes and dtypes but no data, so a tensor made on the CPU meets one on meta and the run stops, as on a GPU.
Parts 1, 2, 4 and 5; Part 3's steps score samples with the classifier and are not fed on here.

And the other way round: every listed mistake of the kind that only the course would show (a tensor made on the
CPU, a dtype the network refuses, a Python number for a time, an overwritten input, gradients left on, a time grid
that drifts) fails in the same pipeline, and fails its grader too.
"""

import copy
import functools
import math
import re
from collections.abc import Callable
from functools import partial
from unittest import mock

import pytest
import torch

from graders.core import GraderFailure
from graders.fixtures import schedule_with
from solutions import part1, part2
from solutions import part4 as ref4
from solutions import part5 as ref5
from tests.proofs import Case, proofs_cases, registry, with_own
from utils.engine.model import check_reaches_noise
from utils.engine.sampling import GuidedModel
from utils.engine.training import FitConfig, TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")

META = torch.device("meta")
UNET = part2.UnetConfig(image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), attention_levels=())

# The mistakes whose cause shows only in the course: the grader's message names one of these.
COURSE_ONLY = re.compile(
    "made on the CPU|changed its argument|float32|float64|Python number|one value per image|without gradients|"
    "hair away|needs_schedule"
)


def own(function: Callable, **earlier: Callable) -> Callable:
    """`function` with the names it calls rebound to `earlier`, kept under torch.no_grad() where it was."""
    inner = getattr(function, "__wrapped__", None)
    return with_own(function, **earlier) if inner is None else torch.no_grad()(with_own(inner, **earlier))


def on(device: torch.device | str, model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` on `device`. On meta the schedule's alpha_bars stay on the CPU, where `sigmas_of` reads them
    on any device (a meta tensor has no values to copy); model.device is read from the betas, which do move."""
    moved = copy.deepcopy(model).to(device)
    if torch.device(device) == META and moved.noise_schedule is not None:
        moved.noise_schedule.alpha_bars = model.noise_schedule.alpha_bars.detach().clone()
    return moved


def calls_of(model: torch.nn.Module) -> list[int]:
    """A list that counts `model`'s forward calls from now on."""
    counted: list[int] = []
    model.register_forward_pre_hook(lambda module, args: counted.append(1))
    return counted


def expect_same(value: torch.Tensor, kept: torch.Tensor, name: str) -> None:
    assert value.device == META or torch.equal(value, kept), f"{name} was changed in place"


def ddpm_unet() -> part2.Unet:
    """Part 3's network at its smallest, on Part 3's schedule (linear, T = 1000)."""
    torch.manual_seed(0)
    return part2.Unet(UNET, part1.NoiseSchedule(part1.linear_schedule(1000))).eval()


def flow_unet(FlowUnet: type = ref5.FlowUnet) -> torch.nn.Module:
    torch.manual_seed(0)
    return FlowUnet(UNET).eval()


# ----------------------------------------------------------------------------------------------------------- Part 5


def toy_mlp(schedule: bool) -> ref5.ToyMLP:
    """The 2-D network of Part 5's paths: it takes a time per point and no other shape of it."""
    torch.manual_seed(0)
    return ref5.ToyMLP(ref5.ToyMLPConfig(hidden_size=16), toy_schedule() if schedule else None).eval()


def toy_schedule() -> part1.NoiseSchedule:
    return part1.NoiseSchedule(part1.linear_schedule(100, 1e-3, 0.2))  # the notebook's toy schedule


def _karras(device, steps_list=(3,), **earlier):
    sampler = own(ref5.karras_sample, **earlier)
    if torch.device(device) != META:
        toy = toy_mlp(schedule=True)
        x_T = torch.randn(4, *toy.image_shape)
        expected = ref5.karras_sample(toy, 4, 3, x_T=x_T)
        torch.testing.assert_close(sampler(toy, 4, 3, x_T=x_T), expected, atol=1e-4, rtol=1e-4)
    model = on(device, ddpm_unet())
    for steps in steps_list if torch.device(device) != META else (2,):
        x_T = torch.randn(2, *UNET.image_shape, device=device)
        kept = x_T.clone()
        out = sampler(model, 2, steps, x_T=x_T)
        expect_same(x_T, kept, "x_T")
        assert out.device == x_T.device and out.dtype == torch.float32 and not out.requires_grad
        if out.device != META:
            assert out.isfinite().all()
            torch.testing.assert_close(out, ref5.karras_sample(model, 2, steps, x_T=kept), atol=1e-4, rtol=1e-4)


def _flow_sample(device, sampler, model=None):
    model = on(device, model if model is not None else flow_unet())
    counted = calls_of(model)
    # on the CPU, step counts whose times add up exactly (4) and not (3, 10); on meta (slower per call), the devices
    runs = (("euler", 4), ("heun", 3), ("euler", 10)) if torch.device(device) != META else (("heun", 2),)
    for method, steps in runs:
        x_1 = torch.randn(2, *UNET.image_shape, device=device)
        kept = x_1.clone()
        counted.clear()
        out = sampler(model, 2, steps, method=method, x_1=x_1)
        expect_same(x_1, kept, "x_1")
        assert len(counted) == (steps if method == "euler" else 2 * steps - 1), f"{len(counted)} model calls"
        assert out.device == x_1.device and out.dtype == torch.float32 and not out.requires_grad
        if out.device != META:
            expected = ref5.flow_sample(model, 2, steps, method=method, x_1=kept)
            torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    assert sampler(model, 2, 1).device == model.device  # x_1 drawn on the model's device
    if torch.device(device) != META:
        toy = toy_mlp(schedule=False)
        x_1 = torch.randn(4, *toy.image_shape)
        for method in ("euler", "heun"):
            expected = ref5.flow_sample(toy, 4, 3, method=method, x_1=x_1)
            torch.testing.assert_close(sampler(toy, 4, 3, method=method, x_1=x_1), expected, atol=1e-4, rtol=1e-4)


def _flow_loss(device, loss_fn, model=None):
    """One step of the given training loop on the CPU; on meta, one loss and its backward pass."""
    model = model if model is not None else flow_unet().train()
    x_0 = torch.rand(8, *UNET.image_shape, device=device) * 2 - 1
    kept = x_0.clone()
    if torch.device(device) == META:
        model = on(META, model)
    loss = loss_fn(model, x_0)
    expect_same(x_0, kept, "x_0")
    assert loss.device == x_0.device and loss.dtype == torch.float32 and loss.ndim == 0
    loss.backward()
    if torch.device(device) != META:
        assert loss.isfinite()
        fit(model, loss_fn, kept, TrainConfig(epochs=1, batch_size=8, device="cpu"), FitConfig(progress=False))


def _flow_unet_class(device, FlowUnet):
    model = flow_unet(FlowUnet)
    _flow_loss(device, ref5.flow_matching_loss, model.train())
    _flow_sample(device, ref5.flow_sample, model.eval())


PIPELINES: dict[tuple[int, str], Callable] = {
    (5, "pf_ode_drift"): lambda impl, device: _karras(device, pf_ode_drift=impl),
    # Part 3's schedule, at step counts where a grid in float32 ends below sigma_1
    (5, "karras_sigmas"): lambda impl, device: _karras(device, (2, 7), karras_sigmas=impl),
    (5, "heun_step"): lambda impl, device: (
        _karras(device, heun_step=impl),
        _flow_sample(device, own(ref5.flow_sample, heun_step=impl)),
    ),
    (5, "flow_interpolate"): lambda impl, device: _flow_loss(
        device, own(ref5.flow_matching_loss, flow_interpolate=impl)
    ),
    (5, "flow_matching_loss"): lambda impl, device: _flow_loss(device, impl),
    (5, "flow_sample"): lambda impl, device: _flow_sample(device, impl),
    (5, "FlowUnet"): lambda impl, device: _flow_unet_class(device, impl),
}


# ----------------------------------------------------------------------------------------------------------- Part 1

TINY1 = part1.TinyDiffuserConfig(image_shape=(1, 4, 4), hidden_size=16)
T1 = 50  # with betas from 1e-3 to 0.3, alpha_bar_T is about 1e-4: the schedule reaches noise


def tiny_betas() -> torch.Tensor:
    return part1.linear_schedule(T1, 1e-3, 0.3)


def tiny_diffuser(schedule=None, TinyDiffuser: type = part1.TinyDiffuser) -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyDiffuser(TINY1, schedule if schedule is not None else part1.NoiseSchedule(tiny_betas()))


def _training(device, loss_fn=part1.diffusion_loss, model=None):
    """One loss on `device` and its backward pass; on the CPU, one step of the given training loop too."""
    model = model if model is not None else tiny_diffuser()
    x_0 = torch.rand(8, *model.image_shape, device=device) * 2 - 1
    kept = x_0.clone()
    loss = loss_fn(ddpm_on(device, model), x_0)
    expect_same(x_0, kept, "x_0")
    assert loss.device == x_0.device and loss.dtype == torch.float32 and loss.numel() == 1
    loss.backward()
    if torch.device(device) != META:
        assert loss.isfinite()
        fit(model, loss_fn, kept, TrainConfig(epochs=1, batch_size=8, device="cpu"), FitConfig(progress=False))


def _sampling(device, sampler=part1.sample, model=None):
    """Algorithm 2 from noise to images: one model call per step, on the model's device, in float32."""
    model = ddpm_on(device, (model if model is not None else tiny_diffuser()).eval())
    counted = calls_of(model)
    out = sampler(model, 3)
    assert out.shape == (3, *model.image_shape) and out.dtype == torch.float32 and not out.requires_grad
    assert out.device.type == torch.device(device).type and len(counted) == len(model.noise_schedule)
    if torch.device(device) != META:
        assert out.isfinite().all()


def _linear(device, linear_schedule):
    betas = linear_schedule(T1, 1e-3, 0.3)
    assert betas.dtype == torch.float32 and betas.shape == (T1,)  # NoiseSchedule's tables follow its dtype
    model = tiny_diffuser(part1.NoiseSchedule(betas))
    _training(device, model=model)
    _sampling(device, model=model)


def _forward_process(device, q):
    """q_eq2 or q_eq4 as the notebook calls them: on the CPU, on an image and the betas, for its figures."""
    del device  # no later step runs them elsewhere
    x = torch.rand(4, *TINY1.image_shape) * 2 - 1
    kept = x.clone()
    out = q(x, 7, tiny_betas())
    expect_same(x, kept, "x")
    assert out.shape == x.shape and out.dtype == torch.float32 and out.device == x.device


def _schedule_class(device, NoiseSchedule):
    """The tables made on the betas' device, in their dtype (as the docstring says), the caller's betas and t left
    as they were; then the schedule of a model that trains and samples."""
    betas = tiny_betas().to(device)
    kept = betas.clone()
    try:
        schedule = NoiseSchedule(betas)
    except (NotImplementedError, RuntimeError) as e:
        if torch.device(device) == META and ("meta tensor" in str(e)):
            return  # built from the betas' values read on the host (.tolist(), .cpu()): right on a GPU, beyond meta
        raise
    expect_same(betas, kept, "betas")
    assert all(getattr(schedule, name).device == betas.device for name in ("betas", "alphas", "alpha_bars"))
    assert NoiseSchedule(tiny_betas().double()).alpha_bars.dtype == torch.float64
    if torch.device(device) == META:  # its lookups read t's values on the host: proven on the CPU
        return
    t = torch.tensor([1, 7, T1])
    schedule.alpha_bar(t)
    expect_same(t, torch.tensor([1, 7, T1]), "t")
    model = tiny_diffuser(schedule)
    _training(device, model=model)
    _sampling(device, model=model)


def _reconstruct(device, reconstruct):
    schedule = ddpm_on(device, tiny_diffuser()).noise_schedule
    x_t, noise, t = torch.randn(4, *TINY1.image_shape), torch.randn(4, *TINY1.image_shape), torch.tensor([1, 9, 30, 50])
    args = [a.to(device) for a in (x_t, noise, t)]
    kept = [a.clone() for a in args]
    out = reconstruct(*args, schedule)
    for a, k, name in zip(args, kept, ("noisy_img", "noise", "num_steps")):
        expect_same(a, k, name)
    assert out.shape == x_t.shape and out.dtype == torch.float32 and out.device.type == torch.device(device).type
    if torch.device(device) != META:
        torch.testing.assert_close(out, part1.reconstruct(x_t, noise, t, schedule))


PIPELINES.update(
    {
        (1, "linear_schedule"): lambda impl, device: _linear(device, impl),
        (1, "q_eq2"): lambda impl, device: _forward_process(device, impl),
        (1, "q_eq4"): lambda impl, device: _forward_process(device, impl),
        (1, "NoiseSchedule"): lambda impl, device: _schedule_class(device, impl),
        (1, "noise_img"): lambda impl, device: _training(device, own(part1.diffusion_loss, noise_img=impl)),
        (1, "reconstruct"): lambda impl, device: _reconstruct(device, impl),
        (1, "TinyDiffuser"): lambda impl, device: (
            _training(device, model=tiny_diffuser(TinyDiffuser=impl)),
            _sampling(device, model=tiny_diffuser(TinyDiffuser=impl)),
        ),
        (1, "diffusion_loss"): lambda impl, device: _training(device, impl),
        # the student's own loop moves the model to config.device and logs the loss's value: run on the CPU alone
        (1, "train"): lambda impl, device: (
            torch.device(device) == META
            or impl(
                tiny_diffuser(), TrainConfig(epochs=1, batch_size=8, device="cpu"), torch.rand(16, *TINY1.image_shape)
            )
        ),
        (1, "sample"): lambda impl, device: _sampling(device, impl),
    }
)


# ----------------------------------------------------------------------------------------------------------- Part 2


def _unet_with(device, step: str, impl):
    """Part 2's U-Net at its smallest, built with `impl` in place of the reference's `step` (the U-Net finds its
    parts by name in its module), trained one step and sampled, as Part 3 does."""
    with mock.patch.object(part2, step, impl):
        torch.manual_seed(0)
        # 10 steps that reach noise (alpha_bar_T about 1e-5): a short Algorithm 2 for a network of many layers
        model = part2.Unet(UNET, part1.NoiseSchedule(part1.linear_schedule(10, 0.1, 0.9)))
    _training(device, model=model)
    _sampling(device, model=model)


PIPELINES.update({(2, step): partial(lambda step, impl, device: _unet_with(device, step, impl), step)
                  for step in registry(2)})  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- Part 4

CONDITIONAL = ref4.ConditionalUnetConfig(
    image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), attention_levels=(), num_classes=3
)


def ddpm_on(device, model: torch.nn.Module) -> torch.nn.Module:
    """`model` on `device`; on meta with the graders' schedule, whose range check of t (a read of t's values on the
    host, which a meta tensor has not) is skipped there: on a GPU that read works."""
    if torch.device(device) == META:
        model = copy.deepcopy(model)
        model.noise_schedule = schedule_with(model.noise_schedule.betas.detach().clone())
    return model.to(device)


def conditional_unet(ConditionalUnet: type = ref4.ConditionalUnet, schedule=None) -> torch.nn.Module:
    torch.manual_seed(0)
    return ConditionalUnet(CONDITIONAL, schedule or part1.NoiseSchedule(ref4.cosine_schedule(100))).eval()


def _ddim(device, sampler, model=None, guided_eps=ref4.guided_eps):
    """The DDIM sampler on the U-Net, plain and guided, as the Part 4 program runs it."""
    model = ddpm_on(device, model if model is not None else conditional_unet())
    labels = torch.tensor([0, 2], device=device)
    guided, expected_guided = (GuidedModel(model, labels, 2.0, g) for g in (guided_eps, ref4.guided_eps))
    runs = ((0.0, model, model), (0.0, guided, expected_guided), (0.5, guided, None))
    for eta, sampled, expected in runs if torch.device(device) != META else runs[2:]:
        x_T = torch.randn(2, *CONDITIONAL.image_shape, device=device)
        kept = x_T.clone()
        out = sampler(sampled, 2, 3, eta=eta, x_T=x_T)
        expect_same(x_T, kept, "x_T")
        assert out.device == x_T.device and out.dtype == torch.float32 and not out.requires_grad
        if out.device != META:
            assert out.isfinite().all()
            if expected is not None:
                torch.testing.assert_close(out, ref4.ddim_sample(expected, 2, 3, x_T=kept), atol=1e-4, rtol=1e-4)
    assert sampler(model, 2, 2, eta=1.0).device == model.device  # x_T drawn on the model's device


def _conditional_training(device, loss_fn, model=None):
    """One step of the given training loop with labels on the CPU; on meta, one loss and its backward pass."""
    model = model if model is not None else conditional_unet().train()
    x_0 = torch.rand(8, *CONDITIONAL.image_shape, device=device) * 2 - 1
    labels = torch.arange(8, device=device) % CONDITIONAL.num_classes
    kept_x, kept_y = x_0.clone(), labels.clone()
    loss = loss_fn(ddpm_on(device, model), x_0, labels, p_uncond=0.25)
    expect_same(x_0, kept_x, "x_0")
    expect_same(labels, kept_y, "labels")
    assert loss.device == x_0.device and loss.dtype == torch.float32 and loss.numel() == 1
    loss.backward()
    if torch.device(device) != META:
        assert loss.isfinite()
        train = TrainConfig(epochs=1, batch_size=8, device="cpu")
        fit(model, partial(loss_fn, p_uncond=0.25), kept_x, train, FitConfig(progress=False), labels=kept_y)


def _cosine(device, cosine_schedule):
    betas = cosine_schedule(100)
    assert betas.dtype == torch.float32 and betas.shape == (100,)
    schedule = part1.NoiseSchedule(betas)
    check_reaches_noise(schedule)
    _ddim(device, ref4.ddim_sample, conditional_unet(schedule=schedule))


def _conditional_unet_class(device, ConditionalUnet):
    model = conditional_unet(ConditionalUnet)
    _conditional_training(device, ref4.conditional_loss, model.train())
    _ddim(device, ref4.ddim_sample, model.eval())
    with torch.no_grad():  # labels=None, as the unguided samplers call it
        out = ddpm_on(device, model)(torch.randn(2, 1, 8, 8, device=device), torch.tensor([3, 70], device=device))
    assert out.device.type == torch.device(device).type


PIPELINES.update(
    {
        (4, "cosine_schedule"): lambda impl, device: _cosine(device, impl),
        (4, "predict_x0"): lambda impl, device: _ddim(
            device, own(ref4.ddim_sample, ddim_step=own(ref4.ddim_step, predict_x0=impl))
        ),
        (4, "ddim_step"): lambda impl, device: _ddim(device, own(ref4.ddim_sample, ddim_step=impl)),
        (4, "ddim_sample"): lambda impl, device: _ddim(device, impl),
        (4, "drop_labels"): lambda impl, device: _conditional_training(
            device, own(ref4.conditional_loss, drop_labels=impl)
        ),
        (4, "ConditionalUnet"): lambda impl, device: _conditional_unet_class(device, impl),
        (4, "conditional_loss"): lambda impl, device: _conditional_training(device, impl),
        (4, "guided_eps"): lambda impl, device: _ddim(device, ref4.ddim_sample, guided_eps=impl),
    }
)  # fmt: skip


# -------------------------------------------------------------------------- the steps the notebooks' derivations use
# No given program calls these; the notebooks do, on the tensors and schedule at hand (a GPU's, in Colab): what they
# return must stay on that device and dtype, and the inputs must stay as they were.


def _on_device(device, fn, *args):
    kept = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    out = fn(*args)
    for a, k in zip(args, kept):
        if isinstance(a, torch.Tensor):
            expect_same(a, k, "an input")
    for o in out if isinstance(out, tuple) else (out,):
        assert o.device.type == torch.device(device).type and o.dtype == torch.float32, (o.device, o.dtype)
    return out


def _schedule_on(device):
    schedule = schedule_with(tiny_betas()) if torch.device(device) == META else part1.NoiseSchedule(tiny_betas())
    return schedule.to(device)


def _images(device, n=4):
    torch.manual_seed(0)
    return torch.rand(n, 1, 4, 4).mul(2).sub(1).to(device), torch.randn(n, 1, 4, 4).to(device)


def _posterior(device, q_posterior):
    x_0, eps = _images(device)
    t = torch.tensor([1, 2, 25, T1], device=device)
    _on_device(device, q_posterior, x_0 + eps, x_0, t, _schedule_on(device))


def _v_round_trip(device, v_target=ref4.v_target, predictions_from_v=ref4.predictions_from_v):
    x_0, eps = _images(device)
    schedule, t = _schedule_on(device), torch.tensor([1, 2, 25, T1], device=device)
    v = _on_device(device, v_target, x_0, eps, t, schedule)
    _on_device(device, predictions_from_v, x_0 + eps, v, t, schedule)


def _flow_predictions(device, flow_predictions):
    x_0, eps = _images(device)
    s = torch.tensor([0.0, 0.3, 0.7, 1.0], device=device)
    _on_device(device, flow_predictions, x_0 + eps, eps - x_0, s)


PIPELINES.update(
    {
        (1, "q_posterior"): lambda impl, device: _posterior(device, impl),
        (4, "v_target"): lambda impl, device: _v_round_trip(device, v_target=impl),
        (4, "predictions_from_v"): lambda impl, device: _v_round_trip(device, predictions_from_v=impl),
        (5, "flow_predictions"): lambda impl, device: _flow_predictions(device, impl),
    }
)


# ----------------------------------------------------------------------------------------------------------- Part 3
# The metrics are used next by the scoring protocol (`Scoring`: every FMNIST-FID and KID the course prints) and by the
# notebook's `fmnist_score`. They compute on the host (numpy, scipy), so they run on the CPU only.


@functools.cache
def _part3_data():
    from utils.datasets.classifier import load_classifier

    torch.manual_seed(0)
    real = torch.rand(48, 1, 28, 28) * 2 - 1
    return real, load_classifier("cpu")


def _scoring(device, **metrics):
    from solutions import part3 as ref3
    from utils.datasets.scoring import Metrics, ProtocolConfig, Scoring

    if torch.device(device) == META:
        pytest.skip("Part 3's scores are computed on the host: there is no meta run of the scoring protocol")
    real, classifier = _part3_data()
    config = ProtocolConfig(floor_draws=2, bootstrap=2, kid_subsets=2, paired_resamples=4)
    scoring = Scoring(Metrics(**({name: getattr(ref3, name) for name in Metrics.__dataclass_fields__} | metrics)),
                      real, 16, classifier, config)  # fmt: skip
    kept = scoring.reference_features.clone()
    samples = real[16:32].flip(-1)
    row = scoring.score(samples)
    assert all(math.isfinite(row[k]) for k in ("fmnist_fid", "fmnist_fid_sd", "kid", "kid_se", "floor"))
    features = scoring.features(samples)
    paired = scoring.paired_difference(features, scoring.features(real[32:48]))
    assert math.isfinite(paired["difference"]) and paired["low"] <= paired["high"]
    expect_same(scoring.reference_features, kept, "the reference's features")


def _fmnist_score(device, inception_score):
    from solutions import part3 as ref3

    real, classifier = _part3_data()
    assert 1 <= own(ref3.fmnist_score, inception_score=inception_score)(real, classifier) <= 10


PIPELINES.update(
    {
        (3, "feature_statistics"): lambda impl, device: _scoring(device, feature_statistics=impl),
        (3, "frechet_distance"): lambda impl, device: _scoring(device, frechet_distance=impl),
        (3, "kernel_inception_distance"): lambda impl, device: _scoring(device, kernel_inception_distance=impl),
        (3, "inception_score"): lambda impl, device: _fmnist_score(device, impl),
    }
)


# ------------------------------------------------------------------------------------------------------- the tests


# Mistakes of that kind that the given code happens not to suffer from: its graders catch them all the same.
UNSEEN = {
    # flow_matching_loss draws eps itself and reads it once; a student's own call of flow_interpolate would see it
    "flow_interpolate_in_place_eps",
    # reads the betas on the host, as the correct NoiseScheduleNumpy does, before it builds its tables on the CPU:
    # the meta device stops both at that read (a GPU would not); its grader tells them apart
    "NoiseScheduleNumpyOnCpu",
    # fmnist_score hands inception_score probabilities it made for the call and reads them no more
    "inception_score_clamps_in_place",
}


def _cases(part: int) -> tuple[list[Case], list[Case]]:
    import importlib

    reference = importlib.import_module(f"solutions.part{part}")
    cases = [Case(step, getattr(reference, step)) for step in registry(part)] + proofs_cases(part)
    cases = [c for c in cases if (part, c.step) in PIPELINES]
    correct = [c for c in cases if c.says is None]
    course_only = [c for c in cases if c.says is not None and COURSE_ONLY.search(c.says)]
    # a mistake registered once per message is run once; one the pipeline cannot see is named in UNSEEN, with why
    course_only = list({(c.step, c.implementation): c for c in course_only}.values())
    course_only = [c for c in course_only if c.implementation.__name__ not in UNSEEN]
    return correct, course_only


def _pipeline_fails(part: int, case: Case, device: str) -> bool:
    try:
        PIPELINES[part, case.step](case.implementation, device)
    except Exception:  # noqa: BLE001 - any failure: a crash, or a broken promise (AssertionError)
        return True
    return False


def _proofs_of(part: int) -> type:
    """The tests of Part `part`'s catalogue, as a class: under `pytest -n`, each part's run on a worker of its own."""
    correct, mistakes = _cases(part)

    class Proofs:
        @pytest.mark.parametrize("device", ["cpu", "meta"])
        @pytest.mark.parametrize("case", correct, ids=[c.id for c in correct])
        def test_every_correct_implementation_runs_in_the_course(self, case, device):
            if device == "meta" and case.unchecked_on_meta:
                pytest.skip("it reads values on the host, which a meta tensor has not (registered so in its catalogue)")
            PIPELINES[part, case.step](case.implementation, device)

        @pytest.mark.parametrize("case", mistakes, ids=[c.id for c in mistakes])
        def test_every_mistake_only_the_course_shows_fails_in_the_course_and_at_its_grader(self, case):
            assert _pipeline_fails(part, case, "cpu") or _pipeline_fails(part, case, "meta"), (
                "runs in the course: it is no mistake there"
            )
            with pytest.raises(GraderFailure):
                registry(part)[case.step](case.implementation)

        def test_the_pipelines_cover_every_step(self):
            assert {step for p, step in PIPELINES if p == part} == set(registry(part))
            assert mistakes, f"Part {part}: no mistake of the kind is listed"

    Proofs.__name__ = Proofs.__qualname__ = f"TestPart{part}"
    return Proofs


TestPart1, TestPart2, TestPart3, TestPart4, TestPart5 = (_proofs_of(part) for part in (1, 2, 3, 4, 5))


def test_each_part_with_pipelines_has_its_tests():
    assert {part for part, _ in PIPELINES} == {1, 2, 3, 4, 5}
