"""Part 4's given machinery: `fit` with labels, the shared subsequence of time steps, guided models, checkpoints of
the conditional U-Net and the one-command program. Tiny models on a CPU, seconds each."""

from functools import partial

import pytest
import torch

from ddpm_course.guidance import SHIPPED_CHECKPOINT, SHIPPED_COMMAND
from ddpm_course.runs import Implementation
from graders.arithmetic import x_0_of, x_t_of
from solutions.part1 import NoiseSchedule, sample
from solutions.part4 import (
    ConditionalUnet,
    ConditionalUnetConfig,
    conditional_loss,
    cosine_schedule,
    ddim_sample,
    guided_eps,
)
from utils.engine.checkpoints import load_checkpoint, save_checkpoint
from utils.engine.model import DiffusionModel
from utils.engine.sampling import ClippedPrediction, GuidedModel, respaced, spaced_steps
from utils.engine.training import FitConfig, RunLog, TrainConfig, fit, minibatches

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = ConditionalUnetConfig(image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), attention_levels=(), num_classes=3)


def tiny_model(T: int = 20) -> ConditionalUnet:
    torch.manual_seed(0)
    return ConditionalUnet(TINY, NoiseSchedule(cosine_schedule(T)))


def test_minibatches_keep_each_label_with_its_image():
    images = torch.arange(10.0).reshape(10, 1, 1, 1)
    labels = torch.arange(10) * 10
    pairs = list(minibatches(images, 4, shuffle=True, labels=labels))
    assert [len(x) for x, _ in pairs] == [4, 4, 2]
    for x, y in pairs:
        assert torch.equal(x.flatten().long() * 10, y)
    with pytest.raises(ValueError, match="one per image"):
        next(minibatches(images, 4, labels=labels[:3]))


def test_fit_passes_the_labels_to_the_loss():
    seen = []

    def loss_fn(model, x_0, y):
        seen.append(y.clone())
        return conditional_loss(model, x_0, y, p_uncond=0.2)

    images = torch.rand(12, 1, 8, 8) * 2 - 1
    labels = torch.tensor([0, 1, 2] * 4)
    log = RunLog()
    fit(
        tiny_model(),
        loss_fn,
        images,
        TrainConfig(epochs=2, batch_size=5, device="cpu"),
        FitConfig(progress=False),
        log=log,
        labels=labels,
    )
    assert len(log.history["loss"]) == 6 and sorted(torch.cat(seen).tolist()) == sorted(labels.tolist() * 2)


def test_spaced_steps_run_from_1_to_T_and_one_step_is_T():
    assert spaced_steps(1000, 10).tolist() == [1, 112, 223, 334, 445, 556, 667, 778, 889, 1000]
    assert spaced_steps(1000, 1).tolist() == [1000]
    assert spaced_steps(7, 7).tolist() == list(range(1, 8))
    with pytest.raises(ValueError, match="1..T = 7"):
        spaced_steps(7, 8)


def test_ddim_at_eta_0_is_deterministic_given_x_T():
    model = tiny_model()
    torch.manual_seed(1)
    x_T = torch.randn(2, 1, 8, 8)
    a = ddim_sample(model, 2, 20, eta=0.0, x_T=x_T)
    torch.manual_seed(2)
    b = ddim_sample(model, 2, 20, eta=0.0, x_T=x_T)
    assert torch.equal(a, b)


def test_guided_model_is_a_diffusion_model_the_samplers_take():
    model = tiny_model().eval()
    labels = torch.tensor([0, 2])
    guided = GuidedModel(model, labels, 2.0, guided_eps)
    assert ddim_sample(guided, 2, 5).shape == (2, 1, 8, 8)
    assert sample(respaced(guided, 4), 2).shape == (2, 1, 8, 8)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 7])
    with torch.no_grad():
        torch.testing.assert_close(guided(x, t), guided_eps(model, x, t, labels, 2.0))
    with pytest.raises(ValueError, match="draws 2 images"):
        guided(torch.randn(3, 1, 8, 8), torch.tensor([1, 1, 1]))


def test_conditional_checkpoints_round_trip(tmp_path):
    model = tiny_model().eval()
    path = save_checkpoint(tmp_path / "c.pt", model, TrainConfig())
    loaded = load_checkpoint(path, "cpu", ConditionalUnet, NoiseSchedule).model
    assert type(loaded) is ConditionalUnet and loaded.config == TINY
    x, t, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 5, 20]), torch.tensor([0, 1, 3])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, y), model(x, t, y))
        torch.testing.assert_close(loaded(x, t), model(x, t, torch.full((3,), 3)))


def test_shipped_conditional_checkpoint_loads_and_is_small():
    assert (
        SHIPPED_CHECKPOINT.stat().st_size < 3e6 and "--export utils/weights/unet_fmnist_cond_cpu.pt" in SHIPPED_COMMAND
    )
    model = load_checkpoint(SHIPPED_CHECKPOINT, "cpu", ConditionalUnet, NoiseSchedule).model
    assert isinstance(model, ConditionalUnet) and len(model.noise_schedule) == 1000
    torch.testing.assert_close(model.noise_schedule.betas, cosine_schedule(1000))


def test_clipped_prediction_keeps_x0_hat_in_range_and_leaves_good_predictions_alone():
    model = tiny_model().eval()
    clipped = ClippedPrediction(model)
    schedule = model.noise_schedule
    x_0 = torch.rand(4, 1, 8, 8) * 1.6 - 0.8
    t = torch.tensor([1, 5, 10, 20])
    eps = torch.randn_like(x_0)
    ab = schedule.alpha_bar(t).view(-1, 1, 1, 1)
    x_t = x_t_of(x_0, eps, ab)

    class Exact(DiffusionModel):  # predicts the true noise: x0_hat = x_0, inside [-1, 1], nothing to clip
        def forward(self, images, num_steps, labels=None):
            return eps

    torch.testing.assert_close(ClippedPrediction(Exact(TINY, schedule))(x_t, t), eps, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        out = clipped(x_t, t, torch.tensor([0, 1, 2, 3]))
    x0_hat = x_0_of(x_t, out, ab)  # the graders' own eq. 4, not the helpers ClippedPrediction calls
    assert x0_hat.abs().max() <= 1 + 1e-4


def test_the_program_takes_any_implementation():
    from solutions import part1, part3, part4

    impl = Implementation.of({1: part1, 3: part3, 4: part4})
    assert impl.guided_eps is guided_eps and impl.conditional_loss is conditional_loss
    with pytest.raises(AttributeError, match="lacks .*guided_eps"):
        Implementation.of({1: part1, 3: part3, 4: object()})


def test_fit_trains_the_conditional_model_with_the_partial_loss():
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    fit(
        model,
        partial(conditional_loss, p_uncond=0.5),
        torch.rand(8, 1, 8, 8) * 2 - 1,
        TrainConfig(epochs=1, batch_size=4, device="cpu"),
        FitConfig(progress=False),
        labels=torch.tensor([0, 1] * 4),
    )
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_ladder_takes_its_numbers_of_steps():
    from ddpm_course.guidance import ladder_settings

    settings = ladder_settings(steps=(10, 50))
    assert settings == [
        ("DDIM", 10, 0.0),
        ("DDIM", 50, 0.0),
        ("DDIM", 10, 1.0),
        ("DDIM", 50, 1.0),
        ("DDPM", 50, None),
        ("DDPM", None, None),
    ]


def test_the_part4_ladder_loads_part3s_checkpoint_into_the_implementations_unet(tmp_path, capsys):
    from ddpm_course.guidance import main

    out = tmp_path / "run"
    argv = ["--quick", "--ladder", "--ladder-models", "linear", "--full-ddpm", "none", "--device", "cpu"]
    argv += ["--n-eval", "64"]  # a small N: what is checked is that the checkpoint loads, not its score
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "linear schedule (Part 3's checkpoint)" in printed and "(floor " in printed
    assert {"metrics.json", "tables.md"} <= {p.name for p in out.iterdir()}
    # the quick ladder's two DDIM rungs at 10 steps (eta 0 and 1) are compared by their paired difference
    assert "FMNIST-FID(DDIM 10 eta 0.0) - FMNIST-FID(DDIM 10 eta 1.0) = " in printed and "paired resamples" in printed
    tables = (out / "tables.md").read_text(encoding="utf-8")
    assert "| DDIM 10 eta 0.0 | DDIM 10 eta 1.0 | " in tables and "clipped to [-1, 1]" in tables


def test_another_checkpoint_goes_up_the_linear_ladder_paired_rung_by_rung_with_part3s(tmp_path, capsys, monkeypatch):
    """--ladder-against: the same checkpoint against itself differs by exactly 0 on every rung, from the same x_T."""
    import ddpm_course.guidance as guidance

    monkeypatch.setattr(guidance, "ladder_settings", lambda quick, steps: [("DDIM", 2, 0.0), ("DDIM", 2, 1.0)])
    out, shipped = tmp_path / "run", str(guidance.UNCONDITIONAL_CHECKPOINT)
    argv = ["--ladder", "--ladder-models", "linear", "--ladder-against", shipped, "--n-eval", "32", "--batch", "32"]
    assert guidance.main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "FMNIST-FID(DDIM 2 eta 1.0, A) - FMNIST-FID(DDIM 2 eta 1.0, B) = +0.0 [+0.0, +0.0]" in printed
    tables = (out / "tables.md").read_text(encoding="utf-8")
    assert f"Paired differences, {shipped} (A) against Part 3's checkpoint (B), rung by rung" in tables
    assert "| DDIM 2 eta 0.0, A | DDIM 2 eta 0.0, B | +0.0 | [+0.0, +0.0] |" in tables
    with pytest.raises(SystemExit):  # nothing to pair it with
        guidance.main(["--ladder", "--ladder-models", "cosine", "--ladder-against", shipped, "--out", str(out)])
    assert "--ladder-against pairs with the linear ladder" in capsys.readouterr().err


def test_the_guidance_sweep_compares_each_weight_with_the_next_by_its_paired_difference(tmp_path, capsys):
    from ddpm_course.guidance import main

    out = tmp_path / "sweep"
    argv = ["--quick", "--sweep", "--sweep-n", "64", "--sweep-steps", "2", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    tables = (out / "tables.md").read_text(encoding="utf-8")
    assert "Paired differences, guidance sweep, each weight against the next" in tables
    assert "| w = 0.0 | w = 1.0 | " in tables and "| w = 1.0 | w = 3.0 | " in tables
    # and by the paired difference of the accuracy on the requested class, printed and tabulated
    assert "accuracy(A) - accuracy(B) | 95% interval |" in tables
    printed = capsys.readouterr().out
    assert (
        "accuracy(w = 0.0) - accuracy(w = 1.0) = " in printed and "accuracy(w = 1.0) - accuracy(w = 3.0) = " in printed
    )
