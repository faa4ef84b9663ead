"""Graders for Part 3: the feature statistics, the Fréchet distance, the Kernel Inception Distance and the Inception
Score's formula.

Each `check_<step>` takes your function and compares it with the reference in `solutions/part3.py`, on small inputs
whose answers are known in closed form (diagonal and commuting covariances, hand-made probability tables) and on
general ones where the reference, built on `scipy.linalg.sqrtm`, is the judge. `feature_statistics` is run on a
stand-in classifier with known features that records how it was called (batch sizes, eval mode, gradients). Where a
common mistake gives a recognisable answer, the failure names it.
"""

import math

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from graders.core import expect, expect_close, expect_statistic, fail, fmt, grader, is_judges_mirror, sampling_tolerance
from graders.fixtures import UNCHECKED_ON_META, run_on_meta, unchanged
from solutions import part3 as ref

# --------------------------------------------------------------------------------------------------------------------
# Helpers


def _as_float64_tensor(value, what: str, shape: tuple[int, ...]) -> Tensor:
    """`value` (a numpy array or a tensor) as a CPU float64 tensor of `shape`, failing clearly otherwise."""
    if isinstance(value, Tensor):
        tensor = value.detach().cpu()
    elif isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.array(value))
    else:
        fail(
            f"{what} should be a numpy array (or a tensor).",
            f"an array of shape {shape}",
            f"{type(value).__name__}: {value!r:.80}",
        )
    if tensor.is_complex():
        fail(f"{what} is complex.", "real float64 values", str(tensor.dtype))
    if tuple(tensor.shape) != shape:
        fail(f"{what} has the wrong shape.", f"shape {shape}", f"shape {tuple(tensor.shape)}")
    expect(
        tensor.dtype == torch.float64,
        f"{what} should be float64.",
        "float64",
        str(tensor.dtype),
        "gather the features with .double() before the mean and covariance: FID subtracts large, nearly equal "
        "numbers, and float32 loses the digits that matter",
    )
    return tensor


def _as_real_float(value, what: str) -> float:
    """A score returned as a float (or a numpy / 0-d tensor scalar); a complex number is named as such."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            fail(f"{what} should be one number.", "a float", fmt(value))
        if value.is_complex():
            value = complex(value.item())
        else:
            return float(value.item())
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (complex, np.complexfloating)):
        fail(
            f"{what} is a complex number.",
            "a real float",
            repr(value),
            "the matrix square root of a singular or near-singular product comes back complex, with a tiny "
            "imaginary residue from rounding: check that it is small, then keep the real part (covmean.real)",
        )
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        fail(f"{what} should be a float.", "a Python float", f"{type(value).__name__}: {value!r:.80}")
    return float(value)


def _spd(d: int, seed: int, positive: bool = True) -> np.ndarray:
    """A well-conditioned symmetric positive-definite d x d matrix; with `positive`, every entry is > 0 too."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 1.0, size=(d, d)) if positive else rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def _sample_cov(n: int, d: int, seed: int) -> np.ndarray:
    """The unbiased covariance of n < d Gaussian draws: rank n - 1, singular like FID's covariances at small N."""
    return np.cov(np.random.default_rng(seed).normal(size=(n, d)), rowvar=False)


def _frechet_with(mu1, s1, mu2, s2, covmean) -> float:
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _frechet_mistakes(mu1, s1, mu2, s2) -> dict[str, float]:
    """What common mistakes give for these Gaussians (those that give a finite number)."""
    diff = mu1 - mu2
    root = scipy.linalg.sqrtm(s1 @ s2).real
    values = {
        "the factor 2 in front of Tr((Sigma_1 Sigma_2)^{1/2}) is missing": _frechet_with(mu1, s1, mu2, s2, root / 2),
        "the mean term is ||mu_1 - mu_2||, not its square ||mu_1 - mu_2||^2": float(
            np.sqrt(diff @ diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
        ),
        "the square root is missing: it is Tr((Sigma_1 Sigma_2)^{1/2}), with scipy.linalg.sqrtm, "
        "not Tr(Sigma_1 Sigma_2)": _frechet_with(mu1, s1, mu2, s2, s1 @ s2),
        "the square root of Tr(Sigma_1 Sigma_2) is not Tr((Sigma_1 Sigma_2)^{1/2}): take the matrix square root "
        "first (scipy.linalg.sqrtm), then the trace": float(
            diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.trace(s1 @ s2))
        ),
        "sqrtm(Sigma_1) @ sqrtm(Sigma_2) is not (Sigma_1 Sigma_2)^{1/2} unless the two commute: take "
        "scipy.linalg.sqrtm(sigma1 @ sigma2)": _frechet_with(
            mu1, s1, mu2, s2, scipy.linalg.sqrtm(s1).real @ scipy.linalg.sqrtm(s2).real
        ),
    }
    with np.errstate(invalid="ignore"):
        elementwise = _frechet_with(mu1, s1, mu2, s2, np.sqrt(s1 * s2))
    if math.isfinite(elementwise):
        values[
            "np.sqrt(sigma1 * sigma2) takes the square root of each entry: the formula needs the matrix square "
            "root of the matrix product, scipy.linalg.sqrtm(sigma1 @ sigma2)"
        ] = elementwise
    return values


def _check_distance(
    frechet_distance,
    mu1,
    s1,
    mu2,
    s2,
    expected: float,
    what: str,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    likely: str | None = None,
) -> None:
    with unchanged(
        "frechet_distance",
        "an offset added with `sigma += ...` changes the caller's matrix: write sigma = sigma + ...",
        mu1=mu1,
        sigma1=s1,
        mu2=mu2,
        sigma2=s2,
    ):
        got = _as_real_float(frechet_distance(mu1, s1, mu2, s2), what)
    if math.isnan(got):
        fail(
            f"{what}: the result is NaN.",
            f"{expected:.8g}",
            "nan",
            "np.sqrt of negative numbers: either the square root of each entry (np.sqrt(sigma1 * sigma2)) instead "
            "of the matrix square root, or eigenvalues of a singular matrix that rounding made slightly negative "
            "(clip them at 0 before the square root)",
        )
    expect_close(
        _scalar(got),
        _scalar(expected),
        what,
        atol=atol,
        rtol=rtol,
        likely=likely,
        mistakes={k: _scalar(x) for k, x in _frechet_mistakes(mu1, s1, mu2, s2).items()},
    )


def _scalar(value: float) -> Tensor:
    """A number as a 0-d float64 tensor, for expect_close."""
    return torch.tensor(float(value), dtype=torch.float64)


# --------------------------------------------------------------------------------------------------------------------


class ProbeClassifier(nn.Module):
    """A stand-in classifier with known features, which records every call. Like the course's classifier, it takes
    only images on its own device, in its own dtype (float32).

    features(x): (B, C, H, W) -> (B, 5), correlated and with a non-zero mean, followed by dropout that is only active
    in training mode. forward(x): the logits, (B, 3), a different size, so features taken from the logits show.
    """

    def __init__(self, n_pixels: int, feature_dim: int = 5, n_classes: int = 3):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.linear = nn.Linear(n_pixels, feature_dim)
        self.mix = nn.Linear(feature_dim, feature_dim)
        self.head = nn.Linear(feature_dim, n_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
        self.dropout = nn.Dropout(0.5)
        self.calls: list[dict] = []

    def _phi(self, x: Tensor) -> Tensor:
        return self.dropout(self.mix(torch.tanh(self.linear(x.flatten(1)))) + 1.5)

    def _record(self, method: str, x: Tensor) -> None:
        weight = self.linear.weight
        if x.device != weight.device or x.dtype != weight.dtype:  # what the course's classifier would raise
            error = RuntimeError(
                "Expected all tensors to be on the same device, but found at least two devices, "
                f"{weight.device} and {x.device}!"
                if x.device != weight.device
                else f"mat1 and mat2 must have the same dtype, but got {x.dtype} and {weight.dtype}"
            )
            error.from_stand_in = True
            raise error
        builds_graph = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        self.calls.append({"method": method, "batch": len(x), "training": self.training, "graph": builds_graph})

    def features(self, x: Tensor) -> Tensor:
        self._record("features", x)
        return self._phi(x)

    def forward(self, x: Tensor) -> Tensor:
        self._record("forward", x)
        return self.head(self._phi(x))

    def exact_statistics(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(features (N, D) float64, mu (D,), unbiased sigma (D, D)) in eval mode, computed without recording."""
        training = self.training
        self.eval()
        with torch.no_grad():
            phi = self._phi(images).double()
        self.train(training)
        return phi, phi.mean(0), torch.cov(phi.T)


@grader("feature_statistics")
def check_feature_statistics(feature_statistics) -> None:
    generator = torch.Generator().manual_seed(0)
    n, batch_size = 600, 128
    images = torch.randn(n, 1, 4, 4, generator=generator)
    classifier = ProbeClassifier(16)  # in training mode, as a freshly built or freshly trained network is
    phi, mu, sigma = classifier.exact_statistics(images)
    d = phi.shape[1]

    with unchanged("feature_statistics", images=images):
        result = feature_statistics(classifier, images, batch_size)
    length = f" of length {len(result)}" if hasattr(result, "__len__") else ""
    expect(
        isinstance(result, tuple) and len(result) == 2,
        "feature_statistics should return two things.",
        "(mu, sigma)",
        f"{type(result).__name__}{length}",
    )
    calls = classifier.calls
    methods = {call["method"] for call in calls}
    if "features" not in methods:
        fail(
            "feature_statistics never called classifier.features.",
            "classifier.features(batch)",
            "classifier(batch)" if "forward" in methods else "no call of the classifier",
            "FID compares the penultimate features, classifier.features(x), not the logits classifier(x): the "
            "logits keep little more than which class an image is",
        )
    expect(
        not any(call["training"] for call in calls),
        "the classifier ran in training mode.",
        "classifier.eval() before computing features",
        "classifier.training == True during the calls",
        "call classifier.eval() first: in training mode dropout zeroes random features and BatchNorm uses the "
        "batch's statistics, so the features would depend on chance and on the batch",
    )
    expect(
        not any(call["graph"] for call in calls),
        "the features were computed with gradients on.",
        "the calls inside `with torch.no_grad():` (or torch.inference_mode())",
        "torch.is_grad_enabled() == True",
        "without no_grad, torch keeps every activation for a backward pass that never comes: with thousands "
        "of images that fills the memory",
    )
    batches = [call["batch"] for call in calls if call["method"] == "features"]
    expect(
        max(batches) <= batch_size,
        f"classifier.features got more than batch_size = {batch_size} images at once.",
        f"batches of at most {batch_size}",
        f"batches of {sorted(set(batches), reverse=True)}",
        "all N images in one call" if max(batches) == n else "split the images: images.split(batch_size)",
    )
    expect(
        sum(batches) == n,
        f"classifier.features saw {sum(batches)} images; there are {n}.",
        f"{n} images, each once",
        f"{sum(batches)}",
        "every image should go through the classifier exactly once",
    )

    got_mu, got_sigma = result
    if isinstance(got_sigma, (np.ndarray, Tensor)) and tuple(got_sigma.shape) == (n, n):
        fail(
            "sigma has shape (N, N): a covariance between images, not between features.",
            f"shape ({d}, {d})",
            f"shape ({n}, {n})",
            "np.cov treats each row as a variable unless rowvar=False; torch.cov wants the "
            "features as rows, torch.cov(features.T)",
        )
    if isinstance(got_mu, (np.ndarray, Tensor)) and tuple(got_mu.shape) == (n,):
        fail(
            "mu has shape (N,): one value per image.",
            f"shape ({d},)",
            f"shape ({n},)",
            "average over the images (axis 0), not over the features",
        )
    got_mu = _as_float64_tensor(got_mu, "mu", (d,))
    got_sigma = _as_float64_tensor(got_sigma, "sigma", (d, d))
    last = phi[n - n % batch_size :] if n % batch_size else phi[-batch_size:]
    expect_close(
        got_mu,
        mu,
        "mu, the mean of the features",
        atol=1e-6,
        rtol=1e-5,
        likely="mu is the mean of classifier.features(x) over the images (axis 0)",
        mistakes={
            "only the last batch's features were kept: collect every batch (a list, then torch.cat)": last.mean(0)
        },
    )
    expect_close(
        got_sigma,
        sigma,
        "sigma, the covariance of the features",
        atol=1e-6,
        rtol=1e-5,
        likely="sigma = 1/(N - 1) sum_n (phi_n - mu)(phi_n - mu)^T, like np.cov(features, rowvar=False)",
        mistakes={
            "only the variances: FID needs the whole covariance matrix, off-diagonal entries included, since "
            "features vary together": torch.diag(torch.diag(sigma)),
            f"the biased covariance, divided by N instead of N - 1: use the unbiased one (np.cov's default, "
            f"torch.cov's correction=1); at N = {n} they differ by a factor {n / (n - 1):.4f}": sigma * (n - 1) / n,
            "only the last batch's features were kept: collect every batch (a list, then torch.cat)": torch.cov(last.T),
        },
    )

    # At small N the unbiased and biased covariances differ by a factor N / (N - 1) = 1.2.
    few = torch.randn(6, 1, 4, 4, generator=generator)
    probe = ProbeClassifier(16)
    _, mu_few, sigma_few = probe.exact_statistics(few)
    got_mu, got_sigma = feature_statistics(probe, few)
    got_mu = _as_float64_tensor(got_mu, "mu (6 images)", (d,))
    got_sigma = _as_float64_tensor(got_sigma, "sigma (6 images)", (d, d))
    expect_close(got_mu, mu_few, "mu of 6 images (default batch_size)", atol=1e-6, rtol=1e-5)
    expect_close(
        got_sigma,
        sigma_few,
        "sigma of 6 images (default batch_size)",
        atol=1e-6,
        rtol=1e-5,
        likely="sigma = 1/(N - 1) sum_n (phi_n - mu)(phi_n - mu)^T",
        mistakes={
            "the biased covariance, divided by N = 6 instead of N - 1 = 5: use the unbiased one "
            "(np.cov's default, torch.cov's correction=1)": sigma_few * 5 / 6
        },
    )

    # On a GPU: the classifier lives there and the images, generated or loaded, may not. The run ends where the
    # features are brought to the host; what the classifier was given before that is what this check reads.
    if is_judges_mirror(feature_statistics):  # the judge's function: the probe's meta weights stay with the judge
        return
    on_meta = ProbeClassifier(16).to("meta")
    run_on_meta(
        lambda: feature_statistics(on_meta, images[:10], 4),
        "feature_statistics",
        "the images are not sent to the classifier's device: classifier.features(batch.to(device)), with device "
        "= next(classifier.parameters()).device",
        caller_judges=True,
    )
    if not on_meta.calls:
        UNCHECKED_ON_META.append("feature_statistics: the classifier was never called on the meta device")


# --------------------------------------------------------------------------------------------------------------------


@grader("frechet_distance")
def check_frechet_distance(frechet_distance) -> None:
    # 1. Diagonal covariances commute: d^2 = ||mu_1 - mu_2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    #    = (1 + 0 + 4) + (1 - 2)^2 + (2 - 1)^2 + (3 - 1)^2 = 11.
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    _check_distance(
        frechet_distance,
        mu1,
        s1,
        mu2,
        s2,
        11.0,
        "frechet_distance(mu1=0, diag(1, 4, 9), mu2=(1, 0, 2), diag(4, 1, 1)), known to be 11",
        likely="d^2 = ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2})",
    )
    # 2. A Gaussian is at distance 0 from itself.
    s = _spd(6, seed=1)
    mu = np.linspace(-1, 1, 6)
    _check_distance(
        frechet_distance,
        mu,
        s,
        mu.copy(),
        s.copy(),
        0.0,
        "the distance between a Gaussian and itself (6 dimensions)",
        atol=1e-7,
        likely="with equal inputs, Tr((Sigma Sigma)^{1/2}) = Tr(Sigma), so everything cancels",
    )
    # 3. Commuting, non-diagonal covariances (the same eigenvectors): again sum_i (sqrt(a_i) - sqrt(b_i))^2.
    q = _rotation(6, seed=2)
    a, b = np.array([0.5, 1.0, 2.0, 3.0, 4.0, 6.0]), np.array([2.0, 1.0, 0.5, 5.0, 1.0, 3.0])
    mu1, mu2 = np.arange(6.0) / 3, np.zeros(6)
    known = float(mu1 @ mu1 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    _check_distance(
        frechet_distance,
        mu1,
        q @ np.diag(a) @ q.T,
        mu2,
        q @ np.diag(b) @ q.T,
        known,
        f"commuting covariances Q diag(a) Q^T and Q diag(b) Q^T, known to be {known:.6f}",
        likely="(Sigma_1 Sigma_2)^{1/2} is a matrix square root: scipy.linalg.sqrtm(sigma1 @ sigma2)",
    )
    # 4. General covariances that do not commute: the scipy-based reference decides.
    for d, seed in ((4, 3), (8, 4)):
        s1, s2 = _spd(d, seed), _spd(d, seed + 10)
        mu1, mu2 = np.random.default_rng(seed).normal(size=(2, d))
        _check_distance(
            frechet_distance,
            mu1,
            s1,
            mu2,
            s2,
            ref.frechet_distance(mu1, s1, mu2, s2),
            f"two {d}-dimensional Gaussians whose covariances do not commute",
            likely="d^2 = ||mu_1 - mu_2||^2 + Tr(Sigma_1) + Tr(Sigma_2) - 2 Tr(sqrtm(Sigma_1 Sigma_2))",
        )
        swapped = _as_real_float(frechet_distance(mu2, s2, mu1, s1), "frechet_distance with the Gaussians swapped")
        expect_close(
            _scalar(swapped),
            _scalar(ref.frechet_distance(mu1, s1, mu2, s2)),
            "frechet_distance with the Gaussians swapped",
            atol=1e-6,
            rtol=1e-6,
            likely="the distance is symmetric: d(N_1, N_2) = d(N_2, N_1)",
        )
    # 5. Singular covariances, like FID's with fewer images than features: 4 and 6 draws in 10 dimensions.
    s1, s2 = _sample_cov(4, 10, seed=5), _sample_cov(6, 10, seed=6)
    mu1, mu2 = np.zeros(10), np.full(10, 0.1)
    _check_distance(
        frechet_distance,
        mu1,
        s1,
        mu2,
        s2,
        ref.frechet_distance(mu1, s1, mu2, s2),
        "two singular covariances (ranks 3 and 5 in 10 dimensions)",
        rtol=1e-5,
        likely="on singular covariances keep the real part of the square root, and add a small offset "
        "to the diagonals only if sqrtm fails (an offset always added shifts the result by "
        "about sqrt(offset) per missing direction: 1e-6 is far too much)",
    )
    # 6. Singular and commuting, with a known answer: zero eigenvalues in different directions.
    q = _rotation(8, seed=7)
    a = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 4.0, 1e-12])
    b = np.array([1.0, 0.0, 0.0, 2.0, 1.0, 3.0, 0.0, 0.0])
    known = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    _check_distance(
        frechet_distance,
        np.zeros(8),
        q @ np.diag(a) @ q.T,
        np.zeros(8),
        q @ np.diag(b) @ q.T,
        known,
        f"singular commuting covariances (eigenvalues 0 in several directions), known to be {known:.6f}",
        rtol=1e-5,
        likely="keep the real part of sqrtm's result; if you go through eigenvalues, clip "
        "the tiny negative ones that rounding makes at 0",
    )


# --------------------------------------------------------------------------------------------------------------------


def _kid_parts(a: Tensor, b: Tensor, n_subsets: int, degree: int = 3, scale: float | None = None) -> dict[str, Tensor]:
    """The per-subset sums KID is made of, for the reference and for the mistakes: each (S,), float64."""
    a, b = a.double(), b.double()
    d = a.shape[1]
    scale = d if scale is None else scale
    m = min(len(a), len(b)) // n_subsets
    a, b = a[: n_subsets * m].reshape(n_subsets, m, d), b[: n_subsets * m].reshape(n_subsets, m, d)

    def kernel(x, y):
        return (x @ y.transpose(1, 2) / scale + 1) ** degree

    k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    diagonal = k_aa.diagonal(dim1=1, dim2=2).sum(1) + k_bb.diagonal(dim1=1, dim2=2).sum(1)
    return {
        "m": torch.tensor(float(m)),
        "within": k_aa.sum((1, 2)) + k_bb.sum((1, 2)),  # both within-set sums, diagonals included
        "diagonal": diagonal,
        "across": k_ab.sum((1, 2)),
        "across_diagonal": k_ab.diagonal(dim1=1, dim2=2).sum(1),
    }


def _unbiased(parts: dict[str, Tensor]) -> Tensor:
    m = parts["m"]
    return (parts["within"] - parts["diagonal"]) / (m * (m - 1)) - 2 * parts["across"] / m**2


def _mmd2_of_blocks(a: Tensor, b: Tensor, n_subsets: int, m: int, sizes_from: str) -> Tensor:
    """The unbiased MMD^2 of each block of m rows, s*m to (s+1)*m - 1, where the last block may run short: divided by
    each block's own row counts (`sizes_from="rows"`) or by m whatever their size ("m"). (S,), float64."""
    d = a.shape[1]
    values = []
    for s in range(n_subsets):
        x, y = a[s * m : (s + 1) * m], b[s * m : (s + 1) * m]
        nx, ny = (len(x), len(y)) if sizes_from == "rows" else (m, m)
        k_xx, k_yy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3
        within = (k_xx.sum() - k_xx.diagonal().sum()) / (nx * (nx - 1)) + (k_yy.sum() - k_yy.diagonal().sum()) / (
            ny * (ny - 1)
        )
        values.append(within - 2 * ((x @ y.T / d + 1) ** 3).sum() / (nx * ny))
    return torch.stack(values)


def _kid_value_mistakes(a: Tensor, b: Tensor, n_subsets: int) -> dict[str, float]:
    """What common mistakes give for KID's value (the mean over subsets) on these features."""
    parts = _kid_parts(a, b, n_subsets)
    mmd2 = _unbiased(parts)
    kid = float(mmd2.mean())
    rows = min(len(a), len(b))
    rounded = round(rows / n_subsets)
    m = parts["m"]
    d = a.shape[1]
    interleaved = _kid_parts(
        torch.cat([a[s : n_subsets * int(m) : n_subsets] for s in range(n_subsets)]),
        torch.cat([b[s : n_subsets * int(m) : n_subsets] for s in range(n_subsets)]),
        n_subsets,
    )
    whole = _kid_parts(a[: n_subsets * int(m)], b[: n_subsets * int(m)], 1)
    values = {
        "the biased estimate: the within-set sums keep their diagonal k(a_i, a_i), which is what biases MMD^2 "
        "upwards. Leave the i = j terms out and divide by m(m - 1)": (parts["within"] - 2 * parts["across"]) / m**2,
        "the diagonal is left out but the within-set sums are still divided by m^2, not m(m - 1)": (
            parts["within"] - parts["diagonal"] - 2 * parts["across"]
        )
        / m**2,
        "the cross term leaves out its diagonal too: k(a_i, b_i) pairs two different images, so the cross sum "
        "keeps all m^2 pairs": (parts["within"] - parts["diagonal"]) / (m * (m - 1))
        - 2 * (parts["across"] - parts["across_diagonal"]) / (m * (m - 1)),
        "the cross term is missing its factor 2": (parts["within"] - parts["diagonal"]) / (m * (m - 1))
        - parts["across"] / m**2,
        "the kernel is squared, not cubed: k(x, y) = (x . y / D + 1)^3": _unbiased(
            _kid_parts(a, b, n_subsets, degree=2)
        ),
        "the kernel has no 1/D: k(x, y) = (x . y / D + 1)^3, with D the feature size": _unbiased(
            _kid_parts(a, b, n_subsets, scale=1.0)
        ),
        "the kernel divides by sqrt(D), not D: k(x, y) = (x . y / D + 1)^3": _unbiased(
            _kid_parts(a, b, n_subsets, scale=d**0.5)
        ),
        # rows drawn at random land here too when a draw happens to pair the same rows (1 in 3 on the known case)
        "the subsets are interleaved (rows s, s + S, s + 2S, ...) or drawn at random: subset s holds the consecutive "
        "rows s*m to (s+1)*m - 1": _unbiased(interleaved),
        "one estimate on all S*m rows instead of the mean of S estimates on disjoint subsets of m rows": _unbiased(
            whole
        ),
    }
    values = {k: float(v.mean()) for k, v in values.items()}
    # A KID made non-negative: the unbiased estimate has expectation 0 for matching sets, so it must stay free to come
    # out negative. Named only where it changes the value.
    why = (
        "the unbiased MMD^2 has expectation 0 when the sets match, so it comes out negative about half the time; "
        "return the mean of the S estimates as it is"
    )
    made_positive = {
        f"KID is clamped at 0: {why}": max(kid, 0.0),
        f"KID is taken in absolute value: {why}": abs(kid),
        f"each subset's estimate is clamped at 0: {why}": float(mmd2.clamp(min=0).mean()),
        f"each subset's estimate is taken in absolute value: {why}": float(mmd2.abs().mean()),
    }
    values |= {k: v for k, v in made_positive.items() if abs(v - kid) > 1e-9 * max(1.0, abs(kid))}
    if rounded * n_subsets > rows:  # round(N / S) rose above N / S: the last block runs past the end of the rows
        block = (
            f"the block size is rounded, round({rows} / {n_subsets}) = {rounded} rows{{}}: m = min(N_a, N_b) // S is "
            f"floored, {rows // n_subsets} rows per subset, and the {rows % n_subsets} rows left over are unused"
        )
        values[block.format("")] = float(_mmd2_of_blocks(a, b, n_subsets, rounded, "rows").mean())
        values[block.format(", each block divided by m even where the last runs short")] = float(
            _mmd2_of_blocks(a, b, n_subsets, rounded, "m").mean()
        )
    return values


def _kid_error_mistakes(a: Tensor, b: Tensor, n_subsets: int) -> dict[str, float]:
    """What common mistakes give for KID's standard error on these features."""
    mmd2 = _unbiased(_kid_parts(a, b, n_subsets))
    root = n_subsets**0.5
    return {
        "the standard deviation of the S estimates is not their mean's standard error: divide it by sqrt(S)": float(
            mmd2.std()
        ),
        "the standard deviation divides by S; the standard error uses the sample standard deviation, divided by "
        "S - 1 (torch's std, or np.std with ddof=1), over sqrt(S)": float(mmd2.std(correction=0) / root),
        "the variance is not the standard error: take its square root (sd / sqrt(S))": float(mmd2.var() / root),
        "the standard error is sd / sqrt(S), not sd / S": float(mmd2.std() / n_subsets),
    }


def _check_kid(
    kernel_inception_distance,
    a,
    b,
    n_subsets: int,
    what: str,
    known: tuple | None = None,
    if_it_crashes: str | None = None,
) -> None:
    """Call the student's KID on (a, b), check that it left them alone and returned two floats, then compare both
    with the reference (or with `known`), naming a known mistake when the values match one, and `if_it_crashes`
    when it fails on the sizes of its blocks."""
    with unchanged("kernel_inception_distance", features_a=a, features_b=b):
        try:
            result = kernel_inception_distance(a, b, n_subsets)
        except NotImplementedError:
            raise
        except Exception as e:
            if if_it_crashes is None or not any(word in str(e) for word in ("shape", "size", "index")):
                raise  # not a question of sizes: the grader's own report says where it broke
            fail(f"{what}: your code raised {type(e).__name__}: {e}", likely=if_it_crashes)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(
            "kernel_inception_distance should return two things.",
            "(kid, standard_error)",
            f"{type(result).__name__}: {result!r:.80}",
        )
    kid = _as_real_float(result[0], f"{what}: the KID")
    error = _as_real_float(result[1], f"{what}: the standard error")
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    expected_kid, expected_error = known if known is not None else ref.kernel_inception_distance(a, b, n_subsets)
    expect_close(
        _scalar(kid),
        _scalar(expected_kid),
        f"{what}: the KID",
        atol=1e-8,
        rtol=1e-6,
        likely="in float64, KID is the mean over the S subsets of 1/(m(m-1)) sum_{i != j} k(a_i, a_j) + 1/(m(m-1)) "
        "sum_{i != j} k(b_i, b_j) - 2/m^2 sum_{i, j} k(a_i, b_j), k(x, y) = (x . y / D + 1)^3, where subset s "
        "holds the consecutive rows s*m to (s+1)*m - 1 of each set (not rows drawn at random)",
        mistakes={k: _scalar(v) for k, v in _kid_value_mistakes(a, b, n_subsets).items()},
    )
    expect_close(
        _scalar(error),
        _scalar(expected_error),
        f"{what}: the standard error",
        atol=1e-8,
        rtol=1e-6,
        likely="the standard error is the sample standard deviation of the S subset estimates over sqrt(S)",
        mistakes={k: _scalar(v) for k, v in _kid_error_mistakes(a, b, n_subsets).items()},
    )


@grader("kernel_inception_distance")
def check_kernel_inception_distance(kernel_inception_distance) -> None:
    # 1. Known by hand. D = 2, S = 2 subsets of m = 2 rows: a = ((1, 0), (0, 1)) twice, b = 0. Across the two rows of
    #    a subset k = (0 / 2 + 1)^3 = 1, and every k involving b is 1, so MMD^2_u = 1 + 1 - 2 = 0 in each subset:
    #    KID 0, standard error 0. (Keeping the diagonal k(a_i, a_i) = (1/2 + 1)^3 = 3.375 gives (2 * 3.375 + 2) / 4
    #    + 1 - 2 = 1.1875.)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    _check_kid(
        kernel_inception_distance,
        a,
        torch.zeros(4, 2, dtype=torch.float64),
        2,
        "KID of ((1, 0), (0, 1), (1, 0), (0, 1)) against four zero vectors, 2 subsets, known to be 0 ± 0",
        known=(0.0, 0.0),
    )
    # 2. Random features as a classifier gives them (float32, a non-zero mean, D = 6), 4 subsets: the reference
    #    decides, value and standard error.
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(40, 6, generator=generator) + 0.5
    b = 1.3 * torch.randn(40, 6, generator=generator)
    _check_kid(kernel_inception_distance, a, b, 4, "KID of two sets of 40 random 6-dimensional features, 4 subsets")
    # 3. Unequal sizes and numpy arrays: m = min(43, 37) // 5 = 7 rows per subset; the rest are left out.
    a = np.random.default_rng(1).normal(size=(43, 5))
    b = np.random.default_rng(2).normal(loc=0.3, size=(37, 5))
    _check_kid(
        kernel_inception_distance,
        a,
        b,
        5,
        "KID of 43 and 37 features (numpy arrays), 5 subsets of m = 7 rows",
    )
    # 4. Two samples of one Gaussian whose KID is negative (-1.0; three of its four subsets are below 0), with a
    #    number of rows that S does not divide: m = 30 // 4 = 7, where round(30 / 4) = 8 would need 32 rows.
    generator_27 = torch.Generator().manual_seed(27)
    a = torch.randn(30, 4, generator=generator_27, dtype=torch.float64)
    b = torch.randn(31, 4, generator=generator_27, dtype=torch.float64)
    _check_kid(
        kernel_inception_distance,
        a,
        b,
        4,
        "KID of 30 and 31 draws of one Gaussian, 4 subsets of m = 30 // 4 = 7 rows (KID below 0)",
        if_it_crashes="m = min(N_a, N_b) // S rows per subset, floored: round(30 / 4) = 8 rows would need 32; the "
        "rows left over (here 2) are unused",
    )
    # 5. Two samples of one distribution: unbiased, the mean of many KIDs is 0 within its sampling error.
    values = [
        _as_real_float(
            kernel_inception_distance(
                torch.randn(24, 4, generator=generator), torch.randn(24, 4, generator=generator), 3
            )[0],
            "KID of two samples of one Gaussian",
        )
        for _ in range(200)
    ]
    expect(
        min(values) < 0,
        "none of 200 KIDs of two samples of one Gaussian came out below 0.",
        "about half of them below 0: the estimate is unbiased, with expectation 0 here",
        f"all of them >= 0 (the smallest {min(values):.3g})",
        "KID is clamped at 0 or its absolute value taken: return the mean of the S unbiased estimates as it is",
    )
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    expect_statistic(
        mean,
        0.0,
        sampling_tolerance(sd, len(values), sigmas=5),
        "the mean KID of 200 pairs of samples of one Gaussian (24 draws each, 3 subsets), 0 for an unbiased estimate",
        likely="the within-set sums must leave out their diagonal k(a_i, a_i) and divide by m(m - 1): the "
        "diagonal alone biases the estimate upwards",
    )


# --------------------------------------------------------------------------------------------------------------------


def _kl_rows(p: Tensor, q: Tensor) -> Tensor:
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def _score_mistakes(probs: Tensor) -> dict[str, float]:
    """What common mistakes give on the table `probs` (those that give a finite number)."""
    p = probs.double()
    p_y = p.mean(0)
    kl = _kl_rows(p, p_y)
    with torch.no_grad():
        values = {
            "exp is applied per image, then averaged (the mean of exp(KL)): average the KL over the images "
            "first, then take exp once": kl.exp().mean(),
            "the exp is missing: the score is exp(E_x KL), and E_x KL is its logarithm": kl.mean(),
            "the KL is summed over the images instead of averaged: E_x is a mean": kl.sum().exp(),
            "the KL is reversed: it is KL(p(y|x) || p(y)), the sum of p(y|x) log(p(y|x) / p(y))": _kl_rows(
                p_y.expand_as(p), p
            )
            .mean()
            .exp(),
            "the marginal p(y) is averaged over the classes (dim=1); it is the mean over the images (dim=0)": _kl_rows(
                p, p.mean(1, keepdim=True)
            )
            .mean()
            .exp(),
            "log p(y) is the mean of log p(y|x): the marginal is the mean of the probabilities, so "
            "log p(y) = log(mean_x p(y|x)), not mean_x log p(y|x)": (
                torch.xlogy(p, p).sum(1) - (p * torch.log(p).mean(0)).sum(1)
            )
            .mean()
            .exp(),
        }
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}


def _check_score(inception_score, probs: Tensor, expected: float, what: str, likely: str | None = None) -> None:
    with unchanged(
        "inception_score", "write new tensors (p = probs.clamp(...)), do not modify probs in place", probs=probs
    ):
        got = _as_real_float(inception_score(probs), what)
    if not math.isfinite(got):
        fail(
            f"{what}: the result is {got}.",
            f"{expected:.6g}",
            str(got),
            "a probability of 0 makes 0 * log 0 = 0 * (-inf) = NaN: use torch.xlogy(p, p) (which gives 0 there), "
            "or clamp the probabilities to a tiny positive value before the log. (With the KL reversed, "
            "p(y) log(p(y) / p(y|x)) is infinite wherever p(y|x) = 0.)",
        )
    expect_close(
        _scalar(got),
        _scalar(expected),
        what,
        atol=1e-6,
        rtol=1e-6,
        likely=likely,
        mistakes={k: _scalar(x) for k, x in _score_mistakes(probs).items()},
    )


@grader("inception_score")
def check_inception_score(inception_score) -> None:
    # Every row the same: p(y|x) = p(y), so every KL is 0 and the score is exp(0) = 1.
    _check_score(
        inception_score,
        torch.full((8, 5), 0.2),
        1.0,
        "the score of uniform rows (8 x 5), known to be 1",
        likely="IS = exp(E_x KL(p(y|x) || p(y))); here p(y|x) = p(y), so KL = 0",
    )
    same = torch.tensor([[0.7, 0.2, 0.1]]).repeat(6, 1)
    _check_score(
        inception_score,
        same,
        1.0,
        "the score of identical non-uniform rows, known to be 1",
        likely="when every row is the same, the marginal p(y) equals each row and every KL is 0",
    )
    # A general table, float32 rows from a softmax as the classifier gives them: the reference decides.
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(40, 6, generator=generator), dim=1)
    _check_score(
        inception_score,
        probs,
        ref.inception_score(probs),
        "the score of a 40 x 6 table of softmax rows",
        likely="IS = exp(mean over images of sum_k p(k|x) log(p(k|x) / p(k))), p(k) = mean over images",
    )
    # Confident and spread evenly: one-hot rows over K = 4 classes, three each. KL = log 4 per image, IS = 4.
    one_hot = torch.eye(4).repeat(3, 1)
    _check_score(
        inception_score,
        one_hot,
        4.0,
        "the score of one-hot rows covering 4 classes evenly, known to be 4",
        likely="each KL is log(1 / (1/4)) = log 4; IS = exp(log 4) = 4",
    )
    # Two images: p(y|x_1) = (1, 0), p(y|x_2) = (1/2, 1/2), so p(y) = (3/4, 1/4), KL_1 = log(4/3), KL_2 =
    # log(4/3) / 2, and IS = exp(3/4 log(4/3)) = (4/3)^(3/4).
    table = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    _check_score(
        inception_score,
        table,
        (4 / 3) ** 0.75,
        "the score of [[1, 0], [1/2, 1/2]], known to be (4/3)^(3/4)",
        likely="p(y) = (3/4, 1/4); KL_1 = log(4/3), KL_2 = log(4/3) / 2; IS = exp of their mean",
    )
