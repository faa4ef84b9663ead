# GENERATED from solutions/part3.py by `python -m utils.authoring.build`: the reference with each exercise's body
# replaced by a stub. This file is yours: fill in the stubs, then run `pytest tests/test_part3.py`.
# Rebuilding never overwrites this file once you have edited it.
# content-hash: b837b6bfdba7d4aa
"""Part 3: measuring how good generated clothes are, with a FashionMNIST classifier in place of Inception.

Follows Heusel, Ramsauer, Unterthiner, Nessler and Hochreiter, "GANs Trained by a Two Time-Scale Update Rule Converge
to a Local Nash Equilibrium" (NeurIPS 2017), which defines the Fréchet Inception Distance (FID) with the closed form
of Dowson and Landau (1982) for the Fréchet distance between two Gaussians; and Salimans, Goodfellow, Zaremba, Cheung,
Radford and Chen, "Improved Techniques for Training GANs" (NeurIPS 2016), section 4, which defines the Inception
Score (IS); and Bińkowski, Sutherland, Arbel and Gretton, "Demystifying MMD GANs" (ICLR 2018), which defines the
Kernel Inception Distance (KID). All three are computed here with the small classifier of
`utils/datasets/classifier.py`, trained on FashionMNIST, instead of Inception-v3: "FMNIST-FID", "FMNIST-KID" and the
"FMNIST score".

Symbols and their names here:

    phi(x)          classifier.features(x), the D penultimate activations of an image x
    mu, Sigma       mean (D,) and covariance (D, D) of phi(x) over a set of images: feature_statistics
    d^2             the Fréchet distance ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2})
    p(y | x)        softmax of the classifier's logits for image x: one row of `probs`
    p(y)            the marginal class distribution, the mean of p(y | x) over the images
    IS              exp(E_x KL(p(y | x) || p(y))): inception_score
    k(x, y)         the cubic polynomial kernel (x . y / D + 1)^3 on two feature vectors
    MMD^2_u         the unbiased estimate of the squared maximum mean discrepancy under k: KID, per subset
"""

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from einops import einsum, rearrange, reduce
from torch import Tensor, nn

from utils.datasets.classifier import load_classifier

# Added to both covariances' diagonals only when the matrix square root of their product fails outright. It shifts
# the distance by about sqrt(offset) per missing direction, so it must stay a last resort, not a habit.
SINGULAR_OFFSET = 1e-6
# Rounding leaves a small imaginary part in the square root of a singular product; anything larger than this (relative
# to the matrix) means the inputs were not covariance matrices.
MAX_IMAGINARY_RESIDUE = 1e-3


def feature_statistics(classifier: nn.Module, images: Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The mean and covariance of the classifier's penultimate features over `images`: FID's (mu, Sigma).

    FID (Heusel et al. 2017) models the features phi(x) of a set of images as a Gaussian N(mu, Sigma) with
        mu = (1/N) sum_n phi(x_n),    Sigma = 1/(N - 1) sum_n (phi(x_n) - mu)(phi(x_n) - mu)^T,
    the unbiased covariance, as `np.cov(features, rowvar=False)` computes it.

    Args:
        classifier: a network with `features(x)`, shape (B, 1, 28, 28) -> (B, D). Put it in eval mode and run it
            without gradients: the statistics of a set of images must not depend on dropout, on the batch they share
            or on memory for a backward pass that never comes.
        images: shape (N, 1, 28, 28), float in [-1, 1], on any device; sent to the classifier's device a batch at a
            time, `batch_size` images per call of `features`.
        batch_size: the most images given to `classifier.features` at once.
    Returns:
        mu: np.ndarray of shape (D,), float64.
        sigma: np.ndarray of shape (D, D), float64, the unbiased covariance.
    """
    raise NotImplementedError("feature_statistics is yours to write")


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The squared Fréchet (Wasserstein-2) distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    Dowson and Landau (1982), as used for FID by Heusel et al. (2017):
        d^2 = ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2}),
    where (Sigma_1 Sigma_2)^{1/2} is a matrix square root (a matrix M with M M = Sigma_1 Sigma_2), not the square
    root of each entry. In exact arithmetic it is real; in floating point, singular or near-singular covariances
    (fewer images than features) leave a small imaginary residue that must be checked and dropped.

    Args:
        mu1, mu2: means, shape (D,); numpy arrays or CPU tensors, used in float64.
        sigma1, sigma2: covariances, shape (D, D), symmetric positive semi-definite. Left unchanged.
    Returns:
        d^2 as a Python float (>= 0 up to rounding).
    """
    raise NotImplementedError("frechet_distance is yours to write")


def kernel_inception_distance(features_a, features_b, n_subsets: int = 4) -> tuple[float, float]:
    """KID between two sets of features and its standard error, as defined by Bińkowski et al. (2018).

    The squared maximum mean discrepancy under the cubic polynomial kernel k(x, y) = (x . y / D + 1)^3, estimated
    without bias on each of S = n_subsets subsets of m rows from each set:

        MMD^2_u = 1/(m(m-1)) sum_{i != j} k(a_i, a_j) + 1/(m(m-1)) sum_{i != j} k(b_i, b_j) - 2/m^2 sum_{i, j} k(a_i, b_j)

    The diagonal terms k(a_i, a_i) are left out of the first two sums: keeping them is what biases the estimate
    upwards. KID is the mean of the S estimates, and its standard error sd / sqrt(S), with the sample standard
    deviation (divided by S - 1). The subsets are disjoint blocks, so that the S estimates are independent:
    m = min(N_a, N_b) // S, subset s holds rows s*m to (s+1)*m - 1 of each set, and the rows left over are unused.
    Unlike FID, the estimate has expectation 0 for two samples of one distribution, at any m.

    Args:
        features_a: shape (N_a, D), the classifier features of one set (a tensor or an array; used in float64).
        features_b: shape (N_b, D), those of the other set.
        n_subsets: S >= 2, the number of subsets; m = min(N_a, N_b) // S must be at least 2.
    Returns:
        (kid, standard_error), two Python floats. KID can come out slightly negative when the sets match.
    """
    raise NotImplementedError("kernel_inception_distance is yours to write")


def inception_score(probs) -> float:
    """The Inception Score's formula on a table of class probabilities (Salimans et al. 2016, section 4).

        IS = exp(E_x KL(p(y | x) || p(y))),   KL(p || q) = sum_k p_k log(p_k / q_k),   p(y) = E_x p(y | x).

    High when each image is confidently one class (p(y | x) peaked) and the images spread over many classes (p(y)
    flat): from 1 (every row the same) up to K (confident rows spread evenly over the K classes). A probability of
    0 contributes 0 to the KL (0 log 0 = 0).

    Args:
        probs: shape (N, K), row n is p(y | x_n): non-negative, each row summing to 1. A tensor or an array.
    Returns:
        The score as a Python float, in [1, K].
    """
    raise NotImplementedError("inception_score is yours to write")


# --------------------------------------------------------------------------------------------------------------------
# Given: the scores Part 3 reports, built on the exercises above


def fmnist_fid(images_a: Tensor, images_b: Tensor, classifier: nn.Module | None = None, batch_size: int = 256) -> float:
    """FMNIST-FID between two sets of images, each (N, 1, 28, 28) in [-1, 1]: lower is closer; 0 for equal statistics.

    The Fréchet distance between the Gaussians fitted to the classifier's features of each set. The estimate is biased
    upwards at small N: the scores the course reports go through `utils.datasets.scoring.Scoring`, which compares
    every set with the same real reference at the same N, beside a floor of real images scored the same way.
    """
    classifier = classifier if classifier is not None else load_classifier()
    mu_a, sigma_a = feature_statistics(classifier, images_a, batch_size)
    mu_b, sigma_b = feature_statistics(classifier, images_b, batch_size)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)


def fmnist_score(images: Tensor, classifier: nn.Module | None = None, batch_size: int = 256) -> float:
    """The FMNIST score of images (N, 1, 28, 28) in [-1, 1]: the Inception Score's formula with our classifier.

    Between 1 and 10. Real FashionMNIST test images score about 6.7, not 10: every class is equally frequent, but the
    classifier (trained with label smoothing) is about 90% sure of an image on average, not 100%.
    """
    classifier = classifier if classifier is not None else load_classifier()
    classifier.eval()
    device = next(classifier.parameters()).device
    with torch.no_grad():
        probs = torch.cat(
            [F.softmax(classifier(batch.to(device)).cpu().double(), dim=1) for batch in images.split(batch_size)]
        )
    return inception_score(probs)
