"""The scoring protocol every figure of Parts 3 and 4 goes through (`utils.datasets.scoring`): real images scored as
if they were samples land within the floor's spread, the reference scored against itself gives 0, and the ladder's
rungs and the sweep's weights are paired (the same x_T for every setting)."""

import pytest
import torch
from torch import Tensor, nn

from ddpm_course.guidance import guidance_sweep, sampler_ladder
from ddpm_course.runs import Implementation
from solutions import part1, part3, part4
from tests.test_part4_pipeline import tiny_model
from utils.datasets.classifier import load_classifier
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.datasets.scoring import Metrics, ProtocolConfig, Scoring, describe
from utils.engine.model import DiffusionModel

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scoring():
    test_images, _ = load_fashion_mnist("test")  # in CI mode, without the dataset: the 2,000 shipped test images
    return Scoring(Metrics.of(part3), test_images, n=64, classifier=load_classifier("cpu"))


def test_held_out_real_images_score_within_the_floor(scoring):
    # Real test images the floor's draws never use as a set: the last 64, scored exactly as samples are.
    row = scoring.score(scoring.held_out[-64:])
    assert abs(row["fmnist_fid"] - row["floor"]) < 2.5 * row["floor_sd"], describe(row)
    assert abs(row["kid"] - row["kid_floor"]) < 2.5 * row["kid_floor_sd"], describe(row)
    # The floor is N real images against the same reference, so at N = 64 it is far above 0 for FID (its bias) and
    # within its spread of 0 for KID (unbiased).
    assert row["floor"] > 5 * row["floor_sd"] and abs(row["kid_floor"]) < 2 * row["kid_floor_sd"], describe(row)
    assert row["n"] == 64 and row["floor_draws"] == ProtocolConfig().floor_draws and row["fmnist_fid_sd"] > 0


def test_the_reference_against_itself_scores_zero(scoring):
    assert abs(scoring.fid(scoring.reference)) < 1e-6 * scoring.floor["floor"]
    # KID's unbiased estimate leaves out k(x_i, x_i) within a set but not across the two, so a set against itself
    # (which no sampler can produce: it is not a second sample) comes out below 0 rather than at it.
    assert scoring.kid(scoring.reference)[0] < 0


def test_the_floor_never_draws_the_reference():
    images = torch.arange(40.0).reshape(40, 1, 1, 1).expand(40, 1, 2, 2)
    seen = []

    def feature_statistics(classifier, batch):
        seen.append(set(batch[:, 0, 0, 0].long().tolist()))
        return torch.zeros(2), torch.eye(2)

    metrics = Metrics(feature_statistics, lambda *args: 1.0, lambda a, b, s: (0.0, 0.0))
    config = ProtocolConfig(floor_draws=5, bootstrap=2, kid_subsets=2)
    Scoring(metrics, images, n=8, classifier=_PixelFeatures(), config=config)
    reference, *draws = seen
    assert reference == set(range(8)) and len(draws) == 5
    assert all(len(draw) == 8 and not draw & reference for draw in draws)
    with pytest.raises(ValueError, match="N <= 20"):
        Scoring(metrics, images, n=21, classifier=_PixelFeatures(), config=config)


class _PixelFeatures(nn.Module):
    """A stand-in classifier: its "features" are four pixels, its logits three."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)[:, :4]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _FirstInputs(DiffusionModel):
    """`model`, recording the images of every call at t = T: a sampler's x_T (twice over for a guided batch)."""

    def __init__(self, model: DiffusionModel):
        super().__init__(model.config, model.noise_schedule)
        self.model, self.x_T = model, []

    def forward(self, images: Tensor, num_steps: Tensor, *args) -> Tensor:
        if (num_steps == len(self.noise_schedule)).all():
            self.x_T.append(images.clone())
        return self.model(images, num_steps, *args)


class _Kept:
    """A stand-in for `Scoring` that keeps what it is given."""

    def __init__(self):
        self.samples = []

    def score(self, samples: Tensor) -> dict:
        self.samples.append(samples)
        return {"n": len(samples)}


IMPL = Implementation.of({1: part1, 3: part3, 4: part4})


def test_the_ladder_rungs_start_from_the_same_x_T_and_noise():
    model, kept = _FirstInputs(tiny_model().eval()), _Kept()
    settings = [("DDPM", 5, None), ("DDIM", 4, 0.0), ("DDIM", 10, 1.0), ("DDPM", 5, None), ("DDPM", None, None)]
    torch.manual_seed(123)  # whatever the generator's state before, the rungs are paired
    sampler_ladder(model, IMPL, None, 6, 4, settings, scoring=kept, clip_x0=False)
    # Two batches (4 + 2 images) per rung, each from its own seed: the same x_T at every rung, different between
    # batches; and a stochastic rung run twice gives the same images (the same noise after x_T, too).
    batches = [model.x_T[i : i + 2] for i in range(0, len(model.x_T), 2)]
    assert len(batches) == len(settings) and [len(x) for x in batches[0]] == [4, 2]
    assert all(torch.equal(a, b) for rung in batches[1:] for a, b in zip(rung, batches[0]))
    assert not torch.equal(batches[0][0][:2], batches[0][1])
    assert torch.equal(kept.samples[0], kept.samples[3]) and not torch.equal(kept.samples[0], kept.samples[4])


def test_the_guidance_weights_start_from_the_same_x_T():
    model = _FirstInputs(tiny_model().eval())
    correct = []
    rows = guidance_sweep(
        model, IMPL, None, 6, 4, [0.0, 2.0], 3, classifier=_PixelFeatures(), scoring=_Kept(), correct=correct
    )
    assert [row["w"] for row in rows] == [0.0, 2.0] and all(0 <= row["accuracy"] <= 1 for row in rows)
    # each weight's hits, sample by sample, for the paired accuracy difference: they make its accuracy
    assert [c.shape for c in correct] == [(6,), (6,)] and all(c.dtype == torch.bool for c in correct)
    assert [c.float().mean().item() for c in correct] == [row["accuracy"] for row in rows]
    assert all(row["accuracy_se"] == (row["accuracy"] * (1 - row["accuracy"]) / 6) ** 0.5 for row in rows)
    first_w, second_w = model.x_T[:2], model.x_T[2:]
    assert len(first_w) == len(second_w) == 2
    assert all(torch.equal(a, b) for a, b in zip(first_w, second_w))


def test_the_readme_tables_quote_their_command_n_device_load_and_intervals():
    from ddpm_course.guidance import markdown_tables

    scores = {"n": 64, "fmnist_fid": 40.0, "fmnist_fid_sd": 3.0, "kid": 2.5, "kid_se": 0.5}
    scores |= {"floor": 31.0, "floor_sd": 5.7, "kid_floor": 0.04, "kid_floor_sd": 2.26}
    rung = {"sampler": "DDIM", "steps": 20, "eta": 0.0, "seconds": 9.6, **scores}
    weight = {"w": 3.0, "steps": 20, "accuracy": 0.79, "accuracy_se": 0.03, "seconds": 30.0, **scores}
    summary = {"command": "ddpm-course reference part4 --ladder --sweep", "device": "cpu", "cpus": 2, "threads": 1}
    summary |= {"load_average": [4.0, 6.5], "ladder": {"linear": [rung]}, "sweep": [weight]}
    tables = markdown_tables(summary)
    assert "`ddpm-course reference part4 --ladder --sweep` on cpu (2 cores, 1 torch thread(s)" in tables
    assert "load average 4.0 before and 6.5 after" in tables
    assert "Ladder, linear, N = 64: floor FMNIST-FID 31.0 ± 5.7, KID 0.04 ± 2.26." in tables
    assert "| DDIM | 20 | 0.0 | 40.0 ± 3.0 | 2.50 ± 0.50 | 10 |" in tables
    assert "| 3.0 | 0.790 ± 0.030 | 40.0 ± 3.0 | 2.50 ± 0.50 | 30 |" in tables
    assert "N = 64 (6 or 7 per class)" in tables  # the classes in turn: 64 = 4 x 7 + 6 x 6


def test_on_an_os_without_a_load_average_the_tables_say_so(monkeypatch):
    """Windows has no os.getloadavg: the programs run there all the same, and the tables say the load is unknown."""
    from ddpm_course.guidance import markdown_tables
    from ddpm_course.runs import load_average

    monkeypatch.delattr("os.getloadavg")
    assert load_average() is None
    summary = {"command": "ddpm-course reference part4", "device": "cpu", "cpus": 2, "threads": 1}
    assert "1 torch thread(s), no load average)." in markdown_tables(summary | {"load_average": [None, None]})


def test_a_paired_difference_is_zero_for_one_set_and_separates_a_worse_one(scoring):
    """Two settings compared by the paired bootstrap: the same samples differ by exactly 0, with an interval of 0;
    samples made visibly worse (blurred to grey) are worse, with an interval that excludes 0."""
    from utils.datasets.scoring import describe_difference

    good = scoring.held_out[-64:]
    features = scoring.features(good)
    same = scoring.paired_difference(features, features)
    assert same["difference"] == same["low"] == same["high"] == 0
    assert "no difference shown" in describe_difference("A", "B", same)
    worse = scoring.features(good * 0.3)
    paired = scoring.paired_difference(features, worse)
    assert paired["low"] <= paired["difference"] <= paired["high"] < 0, paired
    assert "A is better" in describe_difference("A", "B", paired)
    # the full-set difference is that of the protocol's own FIDs (Part 3's feature_statistics)
    assert paired["difference"] == pytest.approx(scoring.fid(good) - scoring.fid(good * 0.3), rel=1e-6)


def test_a_paired_accuracy_difference_counts_the_samples_that_change(scoring):
    """Accuracy(A) - accuracy(B) over the same samples: what changes between the two settings, with an interval from
    resampling the pairs. The same hits differ by exactly 0; ten more hits out of 64 is +10/64, and its interval
    excludes 0 because no sample got worse (a difference of independent accuracies would straddle it)."""
    from utils.datasets.scoring import describe_difference

    n = scoring.n
    b = torch.arange(n) % 2 == 0
    same = scoring.paired_accuracy_difference(b, b.clone())
    assert same["difference"] == same["low"] == same["high"] == 0
    a = b.clone()
    a[1:20:2] = True  # ten samples B got wrong, A gets right
    paired = scoring.paired_accuracy_difference(a, b)
    assert paired["difference"] == pytest.approx(10 / n) and 0 < paired["low"] <= paired["difference"] <= paired["high"]
    assert "accuracy(A) - accuracy(B) = +0.156" in describe_difference("A", "B", paired, "accuracy")
    assert "A is better" in describe_difference("A", "B", paired, "accuracy")  # higher accuracy is better
    worse_first = scoring.paired_accuracy_difference(b, a)
    assert worse_first["high"] < 0 and "w = 1 is better" in describe_difference(
        "w = 0", "w = 1", worse_first, "accuracy"
    )
    with pytest.raises(ValueError, match=f"expected two \\({n},\\) tensors of booleans"):
        scoring.paired_accuracy_difference(a[:10], b)
