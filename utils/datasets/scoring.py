"""The one scoring protocol behind every FMNIST-FID and FMNIST-KID the course prints, with its floor and its spread.

FID (Heusel et al. 2017) estimated from N images is biased upwards by an amount that shrinks with N and depends on
the set scored; KID (Bińkowski et al. 2018) is unbiased but noisy at small N. Either means something only beside
what real images score under the same conditions, and only with its error bar. So every score goes through
`Scoring`, built once for a set of held-out real images and an N:

    reference   the first N images of `real` (the test split): every set is scored against these same N images;
    floor       `floor_draws` draws of N other real images (random, from `real[N:]`, disjoint from the reference),
                each scored against the reference exactly as samples are: their mean ± sd is what a perfect
                generator would score at this N;
    a model     its N samples against the reference, with a spread: the sd of FID over `bootstrap` resamples (with
                replacement) of the samples, and KID's standard error from its subsets;
    A against B the paired difference FID(A) - FID(B) of two settings sampled from the same x_T (the i-th sample of
                each from the same noise), with a 95% interval over `paired_resamples` bootstrap resamples that draw
                the same rows of A, of B and of the reference (and the same for the classifier's accuracy on the
                requested class, `paired_accuracy_difference`). A claim that A beats B holds only where that
                interval excludes 0: the two scores share their noise and their reference, so their own intervals
                overlapping or not says little about their difference.

The arithmetic is the implementation's own (Part 3's `feature_statistics`, `frechet_distance` and
`kernel_inception_distance`, yours or the reference's), passed in as `Metrics`; this module only decides which images
are compared with which, so it never imports solutions/ or exercises/.

    scoring = Scoring(Metrics.of(part3), test_images, n=256)
    row = scoring.score(samples)        # {"n", "fmnist_fid", "fmnist_fid_sd", "kid", "kid_se", "floor", ...}
    print(describe(row))                # FMNIST-FID 52.1 ± 3.0 (floor 9.8 ± 1.9), FMNIST-KID ..., N = 256
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from utils.datasets.classifier import classifier_features, load_classifier


@dataclass(frozen=True)
class Metrics:
    """The three functions of Part 3 that turn features into scores, from one implementation."""

    feature_statistics: Callable  # (classifier, images) -> (mu, sigma)
    frechet_distance: Callable  # (mu1, sigma1, mu2, sigma2) -> float
    kernel_inception_distance: Callable  # (features_a, features_b, n_subsets) -> (kid, standard error)

    @classmethod
    def of(cls, part3) -> "Metrics":
        """The three functions of a Part 3 module (or any object that has them)."""
        return cls(**{name: getattr(part3, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ProtocolConfig:
    """How many draws make each spread. The defaults keep a CPU run's scoring to seconds at N <= 2048
    (each FID is a 128 x 128 matrix square root: milliseconds, unless BLAS threads fight over a busy CPU; then
    OPENBLAS_NUM_THREADS=1 helps)."""

    floor_draws: int = 20  # real held-out sets of N images averaged into the floor
    bootstrap: int = 20  # resamples of a model's samples for the sd of its FID
    kid_subsets: int = 4  # KID's disjoint subsets, for its standard error (m = N / 4 images each)
    paired_resamples: int = 200  # joint resamples behind each paired difference's 95% interval
    seed: int = 0  # which held-out draws and which resamples


class Scoring:
    """FMNIST-FID and KID against one fixed real reference of N held-out images, beside a floor measured the same way.

    Args:
        metrics: the implementation's Part 3 functions.
        real: held-out real images (N_real, 1, 28, 28) in [-1, 1], the test split; needs N_real >= 2 N.
        n: N, the images per scored set: the reference, each floor draw and the samples.
        classifier: the FMNIST classifier (None: the shipped one).
        config: the number of draws behind each spread.
    """

    def __init__(
        self,
        metrics: Metrics,
        real: Tensor,
        n: int,
        classifier: nn.Module | None = None,
        config: ProtocolConfig = ProtocolConfig(),
    ):
        if not 2 * config.kid_subsets <= n <= len(real) // 2:
            raise ValueError(
                f"N = {n} images per set: the reference and the floor's draws need N <= {len(real) // 2} (half the "
                f"{len(real)} held-out images) and KID's {config.kid_subsets} subsets need "
                f"N >= {2 * config.kid_subsets}"
            )
        self.metrics, self.n, self.config = metrics, n, config
        self.classifier = (classifier if classifier is not None else load_classifier()).eval()
        self.reference = real[:n]
        self.held_out = real[n:]  # the floor's draws come from here, never from the reference
        self.reference_statistics = metrics.feature_statistics(self.classifier, self.reference)
        self.reference_features = classifier_features(self.classifier, self.reference)
        self.floor = self._floor()

    def fid(self, images: Tensor) -> float:
        """FMNIST-FID of `images` (N, 1, 28, 28) against the reference."""
        return float(
            self.metrics.frechet_distance(
                *self.metrics.feature_statistics(self.classifier, images), *self.reference_statistics
            )
        )

    def kid(self, images: Tensor) -> tuple[float, float]:
        """FMNIST-KID of `images` against the reference, and its standard error from the subsets."""
        features = classifier_features(self.classifier, images)
        kid, se = self.metrics.kernel_inception_distance(features, self.reference_features, self.config.kid_subsets)
        return float(kid), float(se)

    def _floor(self) -> dict[str, float]:
        """Mean and sd of FID and KID over `floor_draws` sets of N held-out real images, scored as samples are."""
        generator = torch.Generator().manual_seed(self.config.seed)
        fids, kids = [], []
        for _ in range(self.config.floor_draws):
            draw = self.held_out[torch.randperm(len(self.held_out), generator=generator)[: self.n]]
            fids.append(self.fid(draw))
            kids.append(self.kid(draw)[0])
        fids, kids = torch.tensor(fids, dtype=torch.float64), torch.tensor(kids, dtype=torch.float64)
        return {
            "floor": fids.mean().item(),
            "floor_sd": fids.std().item(),
            "kid_floor": kids.mean().item(),
            "kid_floor_sd": kids.std().item(),
        }

    def score(self, samples: Tensor) -> dict[str, float]:
        """The scores of N `samples` (N, 1, 28, 28) in [-1, 1] against the reference, with their spreads and floor.

        fmnist_fid_sd is the sd of FID over bootstrap resamples of the samples (the reference stays fixed, as it
        does for the floor's draws); kid_se is KID's standard error from its subsets.
        """
        if len(samples) != self.n:
            raise ValueError(f"this scoring compares sets of N = {self.n} images; got {len(samples)} samples")
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        resampled = [
            self.fid(samples[torch.randint(self.n, (self.n,), generator=generator)])
            for _ in range(self.config.bootstrap)
        ]
        kid, kid_se = self.kid(samples)
        return {
            "n": self.n,
            "fmnist_fid": self.fid(samples),
            "fmnist_fid_sd": torch.tensor(resampled, dtype=torch.float64).std().item(),
            "kid": kid,
            "kid_se": kid_se,
            **self.floor,
            "floor_draws": self.config.floor_draws,
            "bootstrap": self.config.bootstrap,
        }

    def features(self, samples: Tensor) -> Tensor:
        """The classifier's features of N `samples`, (N, D) float64: what `paired_difference` compares."""
        if len(samples) != self.n:
            raise ValueError(f"this scoring compares sets of N = {self.n} images; got {len(samples)} samples")
        return classifier_features(self.classifier, samples)

    def paired_difference(self, features_a: Tensor, features_b: Tensor) -> dict[str, float]:
        """FID(A) - FID(B) for two sets of samples drawn from the same x_T, row by row, with its 95% interval.

        Each of `paired_resamples` bootstrap resamples draws N row indices (with replacement) shared by A and B,
        and N shared by the reference, and takes the difference of the two FIDs computed on them; the interval is
        the 2.5th and 97.5th percentiles of those differences. Resampling the pairs together keeps what the two
        settings share (their noise, their reference) out of the interval, which is then narrower than either
        score's own spread wherever the two move together.

        Args:
            features_a, features_b: `features` of the two settings' samples, (N, D), row i of each from the same x_T.
        Returns:
            {"difference": FID(A) - FID(B) on all N, "low", "high": its 95% interval, "resamples"}.
        """

        # The statistics of a resample come from torch (mean, unbiased covariance: what `feature_statistics`
        # computes from images), so that a resample costs no pass through the classifier.
        def statistics(features: Tensor) -> tuple:
            return features.mean(0).numpy(), torch.cov(features.T).numpy()

        def difference(rows: Tensor, reference_rows: Tensor) -> float:
            reference = statistics(self.reference_features[reference_rows])
            return float(
                self.metrics.frechet_distance(*statistics(features_a[rows]), *reference)
                - self.metrics.frechet_distance(*statistics(features_b[rows]), *reference)
            )

        generator = torch.Generator().manual_seed(self.config.seed + 2)
        kept = []
        for _ in range(self.config.paired_resamples):
            rows, reference_rows = (torch.randint(self.n, (self.n,), generator=generator) for _ in range(2))
            try:
                kept.append(difference(rows, reference_rows))
            except ValueError:  # at small N a resample's repeated rows can leave no real matrix square root
                continue
        if len(kept) < self.config.paired_resamples // 2:
            raise ValueError(
                f"only {len(kept)} of {self.config.paired_resamples} paired resamples had a Fréchet distance at "
                f"N = {self.n}: too few images for the paired interval"
            )
        everything = torch.arange(self.n)
        return _with_interval(difference(everything, everything), kept)

    def paired_accuracy_difference(self, correct_a: Tensor, correct_b: Tensor) -> dict[str, float]:
        """Accuracy(A) - accuracy(B) for two sets of samples drawn from the same x_T, row by row, with its 95%
        interval: `paired_resamples` bootstrap resamples draw the same N rows of both (as `paired_difference` does),
        so a sample that both settings get right, or both wrong, adds nothing to the interval's width.

        Args:
            correct_a, correct_b: (N,) booleans, whether the classifier gave sample i the class it was asked for.
        Returns:
            {"difference": the difference of the two accuracies on all N, "low", "high": its 95% interval,
            "resamples"}.
        """
        if correct_a.shape != (self.n,) or correct_b.shape != (self.n,):
            raise ValueError(
                f"this scoring compares sets of N = {self.n} samples: expected two ({self.n},) tensors of booleans, "
                f"got shapes {tuple(correct_a.shape)} and {tuple(correct_b.shape)}"
            )
        change = correct_a.double() - correct_b.double()  # per sample: +1, 0 or -1
        generator = torch.Generator().manual_seed(self.config.seed + 3)
        kept = [
            change[torch.randint(self.n, (self.n,), generator=generator)].mean().item()
            for _ in range(self.config.paired_resamples)
        ]
        return _with_interval(change.mean().item(), kept)


def _with_interval(difference: float, resampled: list[float]) -> dict[str, float]:
    """A paired difference on all N with the 2.5th and 97.5th percentiles of its resampled values."""
    draws = torch.tensor(resampled, dtype=torch.float64)
    low, high = torch.quantile(draws, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {"difference": difference, "low": low, "high": high, "resamples": len(resampled)}


def describe_difference(name_a: str, name_b: str, paired: dict, score: str = "FMNIST-FID") -> str:
    """One line for a `paired_difference` (score "FMNIST-FID": lower is better) or a `paired_accuracy_difference`
    (score "accuracy": higher is better): the difference, its interval, and what it supports."""
    lower_is_better = {"FMNIST-FID": True, "accuracy": False}[score]
    if paired["low"] > 0:
        verdict = f"{name_b if lower_is_better else name_a} is better"
    elif paired["high"] < 0:
        verdict = f"{name_a if lower_is_better else name_b} is better"
    else:
        verdict = "no difference shown"
    digits = 1 if lower_is_better else 3
    return (
        f"{score}({name_a}) - {score}({name_b}) = {paired['difference']:+.{digits}f} "
        f"[{paired['low']:+.{digits}f}, {paired['high']:+.{digits}f}] (95%, {paired['resamples']} paired "
        f"resamples): {verdict}"
    )


def describe(row: dict) -> str:
    """One line for a row of `Scoring.score`: each score with its spread, beside its floor, at its N."""
    return (
        f"FMNIST-FID {row['fmnist_fid']:.1f} ± {row['fmnist_fid_sd']:.1f} (floor {row['floor']:.1f} ± "
        f"{row['floor_sd']:.1f}), FMNIST-KID {row['kid']:.2f} ± {row['kid_se']:.2f} "
        f"(floor {row['kid_floor']:.2f} ± {row['kid_floor_sd']:.2f}), N = {row['n']}"
    )


PROTOCOL_NOTE = (
    "each score ± its sd: FID over {bootstrap} bootstrap resamples of the samples, KID its standard error from "
    "subsets; the floor is the mean ± sd over {floor_draws} sets of N held-out real test images, scored like the "
    "samples against the same reference (the first N test images)"
)
