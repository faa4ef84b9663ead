"""The proof that Part 3's graders grade: they pass the reference and other correct ways of writing each step, and
fail each common mistake with a message that names it."""

import pytest

import exercises.part3 as stubs
import graders.part3 as grader
import tests.variants_part3 as v
from graders.core import GraderFailure, NotImplementedYet
from solutions import part3 as ref

# --------------------------------------------------------------------------------------------------------------------
# feature_statistics


@pytest.mark.parametrize("implementation", [
    ref.feature_statistics,
    v.feature_statistics_torch_cov,
    v.feature_statistics_numpy,
    v.feature_statistics_streaming,
], ids=lambda f: f.__name__)
def test_feature_statistics_accepts(implementation):
    grader.check_feature_statistics(implementation)


@pytest.mark.parametrize("implementation, message", [
    (v.feature_statistics_logits, "not the logits"),
    (v.feature_statistics_variances, "only the variances"),
    (v.feature_statistics_biased, "biased covariance, divided by N instead of N - 1"),
    (v.feature_statistics_train_mode, "training mode"),
    (v.feature_statistics_with_grad, "with gradients on"),
    (v.feature_statistics_one_batch, "all N images in one call"),
    (v.feature_statistics_float32, "should be float64"),
    (v.feature_statistics_rowvar, "rowvar=False"),
    (v.feature_statistics_last_batch, "only the last batch"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_feature_statistics_rejects(implementation, message):
    with pytest.raises(GraderFailure, match=message):
        grader.check_feature_statistics(implementation)


# --------------------------------------------------------------------------------------------------------------------
# frechet_distance


@pytest.mark.parametrize("implementation", [
    ref.frechet_distance,
    v.frechet_distance_eigh,
    v.frechet_distance_torch,
    v.frechet_distance_eigvals,
    v.frechet_distance_loops,
], ids=lambda f: f.__name__)
def test_frechet_distance_accepts(implementation):
    grader.check_frechet_distance(implementation)


@pytest.mark.parametrize("implementation, message", [
    (v.frechet_distance_complex, "(?s)complex number.*imaginary residue"),
    (v.frechet_distance_no_factor_two, "factor 2"),
    (v.frechet_distance_elementwise, "square root of each entry"),
    (v.frechet_distance_norm, "not its square"),
    (v.frechet_distance_product_of_roots, r"sqrtm\(Sigma_1\) @ sqrtm\(Sigma_2\)"),
    (v.frechet_distance_no_sqrt, "square root is missing"),
    (v.frechet_distance_unclipped_eigh, "(?s)NaN.*clip them at 0"),
    (v.frechet_distance_in_place_offset, "changed its argument sigma1 in place"),
    (v.frechet_distance_always_offset, "offset always added"),
], ids=lambda x: getattr(x, "__name__", ""))
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_frechet_distance_rejects(implementation, message):
    with pytest.raises(GraderFailure, match=message):
        grader.check_frechet_distance(implementation)


# --------------------------------------------------------------------------------------------------------------------
# inception_score


@pytest.mark.parametrize("implementation", [
    ref.inception_score,
    v.inception_score_entropy,
    v.inception_score_log_space,
    v.inception_score_scipy_loop,
], ids=lambda f: f.__name__)
def test_inception_score_accepts(implementation):
    grader.check_inception_score(implementation)


@pytest.mark.parametrize("implementation, message", [
    (v.inception_score_reversed, "KL is reversed"),
    (v.inception_score_mean_of_exp, r"the mean of exp\(KL\)"),
    (v.inception_score_no_exp, "the exp is missing"),
    (v.inception_score_sum, "summed over the images"),
    (v.inception_score_marginal_over_classes, "averaged over the classes"),
    (v.inception_score_mean_of_log, "log p\\(y\\) is the mean of log p\\(y\\|x\\)"),
    (v.inception_score_naive_log, r"0 \* log 0"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_inception_score_rejects(implementation, message):
    with pytest.raises(GraderFailure, match=message):
        grader.check_inception_score(implementation)


# --------------------------------------------------------------------------------------------------------------------
# Stubs and wrong arguments


@pytest.mark.parametrize("name", ["feature_statistics", "frechet_distance", "inception_score"])
def test_stub_is_reported_as_not_implemented(name):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        getattr(grader, f"check_{name}")(getattr(stubs, name))


@pytest.mark.parametrize("name", ["feature_statistics", "frechet_distance", "inception_score"])
def test_wrong_kind_of_argument(name):
    with pytest.raises(GraderFailure, match="takes your function itself"):
        getattr(grader, f"check_{name}")(1.5)
