"""Other correct ways to write Part 3's exercises, and common mistakes, for tests/test_graders_part3.py.

Each correct variant must pass its grader; each mistake must fail it with a message that names the mistake.
Each is registered once, beside its code: `@correct(step)` or `@mistake(step, says=REGEX)` (tests/proofs.py), from
which tests/test_graders_part3.py makes its proofs.
"""

import numpy as np
import scipy.linalg
import scipy.stats
import torch

from solutions import part3 as ref
from tests.proofs import Catalogue

catalogue = Catalogue()
correct, mistake = catalogue.correct, catalogue.mistake

# --------------------------------------------------------------------------------------------------------------------
# feature_statistics: correct alternatives


@correct("feature_statistics")
def feature_statistics_torch_cov(classifier, images, batch_size=256):
    """torch.cov on the transposed features, inference_mode instead of no_grad, tensors returned instead of arrays,
    the images sent to the classifier's device all at once."""
    classifier.eval()
    images = images.to(next(classifier.parameters()).device)
    with torch.inference_mode():
        phi = torch.cat([classifier.features(b) for b in torch.split(images, batch_size)]).double()
    return phi.mean(dim=0), torch.cov(phi.T)


@correct("feature_statistics")
def feature_statistics_numpy(classifier, images, batch_size=256):
    """np.cov(rowvar=False) on features gathered in a Python loop over index ranges."""
    classifier.eval()
    device = next(classifier.parameters()).device
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            chunks.append(classifier.features(batch).cpu().numpy().astype(np.float64))
    phi = np.concatenate(chunks)
    return phi.mean(axis=0), np.cov(phi, rowvar=False)


@correct("feature_statistics")
def feature_statistics_streaming(classifier, images, batch_size=256):
    """Running sums of phi and of phi phi^T, never holding all features: mean and unbiased covariance at the end."""
    classifier.eval().requires_grad_(False)  # frozen parameters: no graph is built either
    (device,) = {p.device for p in classifier.parameters()}
    n, total, outer = 0, 0.0, 0.0
    for batch in images.split(batch_size):
        phi = classifier.features(batch.to(device)).cpu().double()
        n += len(phi)
        total = total + phi.sum(0)
        outer = outer + phi.T @ phi
    mu = total / n
    sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
    return mu.numpy(), sigma.numpy()


# feature_statistics: mistakes


@mistake("feature_statistics", says="not the logits")
def feature_statistics_logits(classifier, images, batch_size=256):
    # the logits classifier(x) instead of the penultimate features
    classifier.eval()
    with torch.no_grad():
        phi = torch.cat([classifier(b) for b in images.split(batch_size)]).double()
    return phi.mean(0).numpy(), np.cov(phi.numpy(), rowvar=False)


@mistake("feature_statistics", says="only the variances")
def feature_statistics_variances(classifier, images, batch_size=256):
    # a diagonal matrix of variances instead of the covariance
    mu, sigma = ref.feature_statistics(classifier, images, batch_size)
    return mu, np.diag(np.diag(sigma))


@mistake("feature_statistics", says="biased covariance, divided by N instead of N - 1")
def feature_statistics_biased(classifier, images, batch_size=256):
    # np.cov(bias=True): divides by N instead of N - 1
    classifier.eval()
    with torch.no_grad():
        phi = torch.cat([classifier.features(b) for b in images.split(batch_size)]).double().numpy()
    return phi.mean(0), np.cov(phi, rowvar=False, bias=True)


@mistake("feature_statistics", says="training mode")
def feature_statistics_train_mode(classifier, images, batch_size=256):
    # forgets classifier.eval(): dropout stays on
    with torch.no_grad():
        phi = torch.cat([classifier.features(b) for b in images.split(batch_size)]).double()
    return phi.mean(0).numpy(), torch.cov(phi.T).numpy()


@mistake("feature_statistics", says="with gradients on")
def feature_statistics_with_grad(classifier, images, batch_size=256):
    # no torch.no_grad(): detaches afterwards, but the graph was built for every batch
    classifier.eval()
    phi = torch.cat([classifier.features(b) for b in images.split(batch_size)]).detach().double()
    return phi.mean(0).numpy(), torch.cov(phi.T).numpy()


@mistake("feature_statistics", says="(?s)meta.*images are not sent to the classifier's device")
def feature_statistics_images_left_behind(classifier, images, batch_size=256):
    # right on a CPU; on a GPU the classifier gets batches that are still on the CPU
    classifier.eval()
    with torch.no_grad():
        phi = torch.cat([classifier.features(b) for b in images.split(batch_size)]).cpu().double()
    return phi.mean(0).numpy(), torch.cov(phi.T).numpy()


@mistake("feature_statistics", says="all N images in one call")
def feature_statistics_one_batch(classifier, images, batch_size=256):
    # ignores batch_size: all images go through the classifier in one call
    classifier.eval()
    with torch.no_grad():
        phi = classifier.features(images).double()
    return phi.mean(0).numpy(), torch.cov(phi.T).numpy()


@mistake("feature_statistics", says="should be float64")
def feature_statistics_float32(classifier, images, batch_size=256):
    # statistics left in float32
    classifier.eval()
    with torch.no_grad():
        phi = torch.cat([classifier.features(b) for b in images.split(batch_size)])
    return phi.mean(0).numpy(), torch.cov(phi.T).numpy()


@mistake("feature_statistics", says="rowvar=False")
def feature_statistics_rowvar(classifier, images, batch_size=256):
    # np.cov without rowvar=False: a covariance between images
    classifier.eval()
    with torch.no_grad():
        phi = torch.cat([classifier.features(b) for b in images.split(batch_size)]).double().numpy()
    return phi.mean(0), np.cov(phi)


@mistake("feature_statistics", says="only the last batch")
def feature_statistics_last_batch(classifier, images, batch_size=256):
    # overwrites the features in the loop: only the last batch survives
    classifier.eval()
    with torch.no_grad():
        for batch in images.split(batch_size):
            phi = classifier.features(batch).double()
    return phi.mean(0).numpy(), torch.cov(phi.T).numpy()


# --------------------------------------------------------------------------------------------------------------------
# frechet_distance: correct alternatives


@correct("frechet_distance")
def frechet_distance_eigh(mu1, sigma1, mu2, sigma2):
    """Tr((S1 S2)^{1/2}) = sum of sqrt(eigenvalues of S1^{1/2} S2 S1^{1/2}), a symmetric PSD matrix: never complex."""
    mu1, mu2, sigma1, sigma2 = (np.asarray(x, dtype=np.float64) for x in (mu1, mu2, sigma1, sigma2))
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eigenvalues = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_covmean = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


@correct("frechet_distance")
def frechet_distance_torch(mu1, sigma1, mu2, sigma2):
    """The same eigenvalue route in torch, float64."""
    mu1, mu2, sigma1, sigma2 = (torch.as_tensor(x, dtype=torch.float64) for x in (mu1, mu2, sigma1, sigma2))
    w, v = torch.linalg.eigh(sigma1)
    root1 = v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T
    trace_covmean = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp(min=0).sqrt().sum()
    return (torch.dot(mu1 - mu2, mu1 - mu2) + sigma1.trace() + sigma2.trace() - 2 * trace_covmean).item()


@correct("frechet_distance")
def frechet_distance_eigvals(mu1, sigma1, mu2, sigma2):
    """Tr(sqrtm(A)) = sum of sqrt(eigenvalues of A): the eigenvalues of S1 S2 are real and >= 0 up to rounding."""
    eigenvalues = np.linalg.eigvals(np.asarray(sigma1) @ np.asarray(sigma2)).real
    trace_covmean = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


@correct("frechet_distance")
def frechet_distance_loops(mu1, sigma1, mu2, sigma2):
    """Traces and the squared norm written as Python loops around scipy's sqrtm."""
    covmean = scipy.linalg.sqrtm(np.asarray(sigma1) @ np.asarray(sigma2))
    covmean = np.real_if_close(covmean, tol=1e6).real
    total = 0.0
    for i in range(len(mu1)):
        total += (mu1[i] - mu2[i]) ** 2 + sigma1[i, i] + sigma2[i, i] - 2 * covmean[i, i]
    return float(total)


# frechet_distance: mistakes


@mistake("frechet_distance", says="(?s)complex number.*imaginary residue")
def frechet_distance_complex(mu1, sigma1, mu2, sigma2):
    # keeps sqrtm's imaginary residue: complex result on singular covariances
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean)


@mistake("frechet_distance", says="factor 2")
def frechet_distance_no_factor_two(mu1, sigma1, mu2, sigma2):
    # Tr(S1 + S2 - (S1 S2)^{1/2}): the 2 is missing
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - covmean))


@mistake("frechet_distance", says="square root of each entry")
def frechet_distance_elementwise(mu1, sigma1, mu2, sigma2):
    # np.sqrt of the elementwise product instead of a matrix square root
    covmean = np.sqrt(sigma1 * sigma2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean))


@mistake("frechet_distance", says="not its square")
def frechet_distance_norm(mu1, sigma1, mu2, sigma2):
    # ||mu1 - mu2|| instead of its square
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(np.linalg.norm(mu1 - mu2) + np.trace(sigma1 + sigma2 - 2 * covmean))


@mistake("frechet_distance", says=r"sqrtm\(Sigma_1\) @ sqrtm\(Sigma_2\)")
def frechet_distance_product_of_roots(mu1, sigma1, mu2, sigma2):
    # sqrtm(S1) @ sqrtm(S2): equal to (S1 S2)^{1/2} only when S1 and S2 commute
    covmean = (scipy.linalg.sqrtm(sigma1) @ scipy.linalg.sqrtm(sigma2)).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean))


@mistake("frechet_distance", says="square root is missing")
def frechet_distance_no_sqrt(mu1, sigma1, mu2, sigma2):
    # Tr(S1 S2) with no square root at all
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * sigma1 @ sigma2))


@mistake("frechet_distance", says="(?s)NaN.*clip them at 0")
def frechet_distance_unclipped_eigh(mu1, sigma1, mu2, sigma2):
    # eigenvalue route without clipping the last step: sqrt of the tiny negative eigenvalues of a singular M is NaN
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    trace_covmean = np.sqrt(np.linalg.eigvalsh(root1 @ sigma2 @ root1)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


@mistake("frechet_distance", says="changed its argument `sigma1` in place")
def frechet_distance_in_place_offset(mu1, sigma1, mu2, sigma2):
    # adds the regularising offset to the caller's matrices in place
    sigma1 += 1e-12 * np.eye(len(sigma1))
    sigma2 += 1e-12 * np.eye(len(sigma2))
    return ref.frechet_distance(mu1, sigma1, mu2, sigma2)


@mistake("frechet_distance", says="offset always added")
def frechet_distance_always_offset(mu1, sigma1, mu2, sigma2):
    # always adds eps = 1e-6 to the diagonals: shifts singular cases by about sqrt(eps) per missing direction
    offset = 1e-6 * np.eye(len(sigma1))
    return ref.frechet_distance(mu1, sigma1 + offset, mu2, sigma2 + offset)


# --------------------------------------------------------------------------------------------------------------------
# kernel_inception_distance: correct alternatives


@correct("kernel_inception_distance")
def kid_loops(features_a, features_b, n_subsets=4):
    """Plain Python loops over subsets and pairs, numpy float64, ddof=1."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    d = a.shape[1]
    m = min(len(a), len(b)) // n_subsets

    def k(x, y):
        return (x @ y / d + 1) ** 3

    estimates = []
    for s in range(n_subsets):
        x, y = a[s * m : (s + 1) * m], b[s * m : (s + 1) * m]
        within_x = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
        within_y = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
        across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
        estimates.append(within_x / (m * (m - 1)) + within_y / (m * (m - 1)) - 2 * across / m**2)
    return float(np.mean(estimates)), float(np.std(estimates, ddof=1) / np.sqrt(n_subsets))


@correct("kernel_inception_distance")
def kid_numpy_masked(features_a, features_b, n_subsets=4):
    """numpy, one kernel matrix per subset, the diagonal removed with a mask; the mean of the off-diagonal entries."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    d = a.shape[1]
    m = min(len(a), len(b)) // n_subsets
    off = ~np.eye(m, dtype=bool)
    estimates = []
    for s in range(n_subsets):
        x, y = a[s * m : (s + 1) * m], b[s * m : (s + 1) * m]
        k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        estimates.append(k_xx[off].mean() + k_yy[off].mean() - 2 * k_xy.mean())
    estimates = np.array(estimates)
    return float(estimates.mean()), float(estimates.std(ddof=1) / np.sqrt(n_subsets))


@correct("kernel_inception_distance")
def kid_one_kernel_matrix(features_a, features_b, n_subsets=4):
    """torch: one kernel matrix over all rows of both sets, cut into the subsets' blocks afterwards."""
    a, b = torch.as_tensor(features_a).double(), torch.as_tensor(features_b).double()
    m = min(len(a), len(b)) // n_subsets
    a, b = a[: n_subsets * m], b[: n_subsets * m]
    both = torch.cat([a, b])
    kernel = (both @ both.T / a.shape[1] + 1) ** 3
    n = n_subsets * m
    estimates = []
    for s in range(n_subsets):
        i = slice(s * m, (s + 1) * m)
        j = slice(n + s * m, n + (s + 1) * m)
        k_aa, k_bb, k_ab = kernel[i, i], kernel[j, j], kernel[i, j]
        within = (k_aa.sum() - k_aa.trace() + k_bb.sum() - k_bb.trace()) / (m * (m - 1))
        estimates.append(within - 2 * k_ab.mean())
    estimates = torch.stack(estimates)
    return estimates.mean().item(), (estimates.std() / n_subsets**0.5).item()


# kernel_inception_distance: mistakes


def _kid_from(
    a,
    b,
    n_subsets,
    degree=3,
    scale=None,
    keep_diagonal=False,
    cross_off_diagonal=False,
    error="se",
    clamp_subsets=False,
):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    d = a.shape[1]
    m = min(len(a), len(b)) // n_subsets
    a = a[: n_subsets * m].reshape(n_subsets, m, d)
    b = b[: n_subsets * m].reshape(n_subsets, m, d)
    scale = d if scale is None else scale

    def kernel(x, y):
        return (x @ y.transpose(1, 2) / scale + 1) ** degree

    def within(k):
        if keep_diagonal:
            return k.mean((1, 2))
        return (k.sum((1, 2)) - k.diagonal(dim1=1, dim2=2).sum(1)) / (m * (m - 1))

    k_ab = kernel(a, b)
    across = within(k_ab) if cross_off_diagonal else k_ab.mean((1, 2))
    mmd2 = within(kernel(a, a)) + within(kernel(b, b)) - 2 * across
    if clamp_subsets:
        mmd2 = mmd2.clamp(min=0)
    spread = {
        "se": mmd2.std() / n_subsets**0.5,
        "std": mmd2.std(),
        "ddof0": mmd2.std(correction=0) / n_subsets**0.5,
        "variance": mmd2.var() / n_subsets**0.5,
    }[error]
    return mmd2.mean().item(), spread.item()


@mistake("kernel_inception_distance", says="(?s)the biased estimate.*keep their diagonal")
def kid_biased(features_a, features_b, n_subsets=4):
    # keeps k(a_i, a_i) in the within-set means: the V-statistic, biased upwards
    return _kid_from(features_a, features_b, n_subsets, keep_diagonal=True)


@mistake("kernel_inception_distance", says="squared, not cubed")
def kid_degree_two(features_a, features_b, n_subsets=4):
    # a quadratic kernel instead of the cubic one
    return _kid_from(features_a, features_b, n_subsets, degree=2)


@mistake("kernel_inception_distance", says="has no 1/D")
def kid_no_scale(features_a, features_b, n_subsets=4):
    # (x . y + 1)^3: the 1/D is missing
    return _kid_from(features_a, features_b, n_subsets, scale=1.0)


@mistake("kernel_inception_distance", says=r"divides by sqrt\(D\), not D")
def kid_sqrt_scale(features_a, features_b, n_subsets=4):
    # (x . y / sqrt(D) + 1)^3, the attention habit
    a = torch.as_tensor(features_a)
    return _kid_from(features_a, features_b, n_subsets, scale=a.shape[1] ** 0.5)


@mistake("kernel_inception_distance", says="cross term leaves out its diagonal")
def kid_cross_off_diagonal(features_a, features_b, n_subsets=4):
    # drops k(a_i, b_i) from the cross term as well
    return _kid_from(features_a, features_b, n_subsets, cross_off_diagonal=True)


@mistake("kernel_inception_distance", says="(?s)standard error.*is not their mean's standard error")
def kid_std(features_a, features_b, n_subsets=4):
    # reports the standard deviation of the subset estimates, not the standard error of their mean
    return _kid_from(features_a, features_b, n_subsets, error="std")


@mistake("kernel_inception_distance", says="divided by S - 1")
def kid_ddof0(features_a, features_b, n_subsets=4):
    # np.std's default: divides by S, not S - 1
    return _kid_from(features_a, features_b, n_subsets, error="ddof0")


@mistake("kernel_inception_distance", says="subsets are interleaved")
def kid_interleaved(features_a, features_b, n_subsets=4):
    # subset s takes rows s, s + S, s + 2S, ... instead of a block of consecutive rows
    a, b = torch.as_tensor(features_a), torch.as_tensor(features_b)
    m = min(len(a), len(b)) // n_subsets
    a = torch.cat([a[s : n_subsets * m : n_subsets] for s in range(n_subsets)])
    b = torch.cat([b[s : n_subsets * m : n_subsets] for s in range(n_subsets)])
    return _kid_from(a, b, n_subsets)


@mistake("kernel_inception_distance", says="(?s)the KID does not match.*drawn at random")
def kid_random_subsets(features_a, features_b, n_subsets=4):
    # Bińkowski et al.'s code draws each subset at random: another estimate, not the blocks the docstring asks for
    a, b = torch.as_tensor(features_a), torch.as_tensor(features_b)
    m = min(len(a), len(b)) // n_subsets
    order = torch.randperm(n_subsets * m)
    return _kid_from(a[order], b[order], n_subsets)


@mistake("kernel_inception_distance", says="(?s)KID below 0.*KID is clamped at 0")
def kid_clamped(features_a, features_b, n_subsets=4):
    # "a distance cannot be negative": the mean clamped at 0
    kid, error = _kid_from(features_a, features_b, n_subsets)
    return max(kid, 0.0), error


@mistake("kernel_inception_distance", says="(?s)KID below 0.*KID is taken in absolute value")
def kid_absolute(features_a, features_b, n_subsets=4):
    kid, error = _kid_from(features_a, features_b, n_subsets)
    return abs(kid), error


@mistake("kernel_inception_distance", says="each subset's estimate is clamped at 0")
def kid_subsets_clamped(features_a, features_b, n_subsets=4):
    # each subset's MMD^2 clamped at 0 before the mean
    return _kid_from(features_a, features_b, n_subsets, clamp_subsets=True)


@mistake("kernel_inception_distance", says="(?s)30 // 4 = 7 rows.*raised.*floored: round\\(30 / 4\\) = 8")
def kid_rounded_reshape(features_a, features_b, n_subsets=4):
    # S blocks of round(N / S) rows: one row short of filling them, so the reshape fails
    a, b = torch.as_tensor(features_a).double(), torch.as_tensor(features_b).double()
    m = round(min(len(a), len(b)) / n_subsets)
    a = a[: n_subsets * m].reshape(n_subsets, m, -1)
    return _kid_from(a.flatten(0, 1), b[: n_subsets * m], n_subsets)


@mistake("kernel_inception_distance", says="block size is rounded, round\\(30 / 4\\) = 8 rows")
def kid_rounded_slices(features_a, features_b, n_subsets=4):
    """m = round(N / S), subset s sliced as rows s*m to (s+1)*m - 1: the last one runs short."""
    a, b = torch.as_tensor(features_a).double(), torch.as_tensor(features_b).double()
    m = round(min(len(a), len(b)) / n_subsets)
    d = a.shape[1]
    estimates = []
    for s in range(n_subsets):
        x, y = a[s * m : (s + 1) * m], b[s * m : (s + 1) * m]
        k_xx, k_yy, k_xy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        off_x, off_y = ~torch.eye(len(x), dtype=torch.bool), ~torch.eye(len(y), dtype=torch.bool)
        estimates.append(k_xx[off_x].mean() + k_yy[off_y].mean() - 2 * k_xy.mean())
    estimates = torch.stack(estimates)
    return estimates.mean().item(), (estimates.std() / n_subsets**0.5).item()


@mistake("kernel_inception_distance", says="changed its argument `features_a` in place")
def kid_centres_in_place(features_a, features_b, n_subsets=4):
    """Centres the features in place: torch.as_tensor shares the caller's float64 tensor or array."""
    a = torch.as_tensor(features_a)
    a -= a.mean(0)
    return _kid_from(a, features_b, n_subsets)


# --------------------------------------------------------------------------------------------------------------------
# inception_score: correct alternatives


@correct("inception_score")
def inception_score_entropy(probs):
    """IS = exp(H(p(y)) - E_x H(p(y|x))): the mean KL to the marginal is the mutual information."""
    p = torch.as_tensor(probs).double()
    p_y = p.mean(0)
    entropy_marginal = -torch.xlogy(p_y, p_y).sum()
    mean_entropy = -torch.xlogy(p, p).sum(1).mean()
    return (entropy_marginal - mean_entropy).exp().item()


@correct("inception_score")
def inception_score_log_space(probs):
    """In log space with logsumexp for log p(y), clamping before the log; base-2 logs with 2 ** (the same score)."""
    p = torch.as_tensor(probs).double()
    log_p = torch.log2(p.clamp_min(1e-300))
    log_p_y = torch.logsumexp(log_p * np.log(2), dim=0) / np.log(2) - np.log2(len(p))
    kl_bits = (p * (log_p - log_p_y)).sum(1)
    return float(2 ** kl_bits.mean())


@correct("inception_score")
def inception_score_scipy_loop(probs):
    """scipy.stats.entropy(p, q) is KL(p || q); one image at a time."""
    p = np.asarray(probs, dtype=np.float64)
    p_y = p.mean(axis=0)
    kls = [scipy.stats.entropy(row, p_y) for row in p]
    return float(np.exp(np.mean(kls)))


# inception_score: mistakes


@mistake("inception_score", says="changed its argument `probs` in place")
def inception_score_clamps_in_place(probs):
    """Clamps the zeros away for the log, in the caller's tensor (torch.as_tensor shares its memory)."""
    p = torch.as_tensor(probs).clamp_(min=1e-12).double()
    p_y = p.mean(0)
    return float(torch.exp((p * (p.log() - p_y.log())).sum(1).mean()))


@mistake("inception_score", says="KL is reversed")
def inception_score_reversed(probs):
    # KL(p(y) || p(y|x)) instead of KL(p(y|x) || p(y))
    p = torch.as_tensor(probs).double()
    p_y = p.mean(0).expand_as(p)
    return float((torch.xlogy(p_y, p_y) - torch.xlogy(p_y, p)).sum(1).mean().exp())


@mistake("inception_score", says=r"the mean of exp\(KL\)")
def inception_score_mean_of_exp(probs):
    # exp per image, then the mean
    p = torch.as_tensor(probs).double()
    kl = (torch.xlogy(p, p) - torch.xlogy(p, p.mean(0))).sum(1)
    return float(kl.exp().mean())


@mistake("inception_score", says="the exp is missing")
def inception_score_no_exp(probs):
    # returns E_x KL, the log of the score
    p = torch.as_tensor(probs).double()
    return float((torch.xlogy(p, p) - torch.xlogy(p, p.mean(0))).sum(1).mean())


@mistake("inception_score", says="summed over the images")
def inception_score_sum(probs):
    # sums the KL over images instead of averaging
    p = torch.as_tensor(probs).double()
    return float((torch.xlogy(p, p) - torch.xlogy(p, p.mean(0))).sum(1).sum().exp())


@mistake("inception_score", says="averaged over the classes")
def inception_score_marginal_over_classes(probs):
    # p(y) averaged over the classes instead of over the images
    p = torch.as_tensor(probs).double()
    return float((torch.xlogy(p, p) - torch.xlogy(p, p.mean(1, keepdim=True))).sum(1).mean().exp())


@mistake("inception_score", says="log p\\(y\\) is the mean of log p\\(y\\|x\\)")
def inception_score_mean_of_log(probs):
    # log p(y) as the mean of log p(y|x) instead of the log of the mean
    p = torch.as_tensor(probs).double()
    log_p = p.clamp_min(1e-12).log()
    return float((p * (log_p - log_p.mean(0))).sum(1).mean().exp())


@mistake("inception_score", says=r"0 \* log 0")
def inception_score_naive_log(probs):
    # p * log(p) without care: 0 * log 0 = NaN
    p = torch.as_tensor(probs).double()
    return float((p * (p.log() - p.mean(0).log())).sum(1).mean().exp())


@mistake("feature_statistics", says="more than batch_size = 128")
def feature_statistics_default_batch(classifier, images, batch_size=256):
    # batches of the default size whatever batch_size says
    classifier.eval()
    with torch.no_grad():
        phi = torch.cat([classifier.features(b) for b in images.split(256)]).double()
    return phi.mean(0).numpy(), torch.cov(phi.T).numpy()
