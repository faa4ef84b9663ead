"""The proof that Part 3's graders grade: they pass the reference and other correct ways of writing each step, and
fail each common mistake with a message that names it."""

import graders.part3 as grader
import tests.variants_part3 as v
from solutions import part3 as ref
from tests.proofs import proofs

CORRECT = [
    (grader.check_feature_statistics, ref.feature_statistics),
    (grader.check_feature_statistics, v.feature_statistics_torch_cov),
    (grader.check_feature_statistics, v.feature_statistics_numpy),
    (grader.check_feature_statistics, v.feature_statistics_streaming),
    (grader.check_frechet_distance, ref.frechet_distance),
    (grader.check_frechet_distance, v.frechet_distance_eigh),
    (grader.check_frechet_distance, v.frechet_distance_torch),
    (grader.check_frechet_distance, v.frechet_distance_eigvals),
    (grader.check_frechet_distance, v.frechet_distance_loops),
    (grader.check_kernel_inception_distance, ref.kernel_inception_distance),
    (grader.check_kernel_inception_distance, v.kid_loops),
    (grader.check_kernel_inception_distance, v.kid_numpy_masked),
    (grader.check_kernel_inception_distance, v.kid_one_kernel_matrix),
    (grader.check_inception_score, ref.inception_score),
    (grader.check_inception_score, v.inception_score_entropy),
    (grader.check_inception_score, v.inception_score_log_space),
    (grader.check_inception_score, v.inception_score_scipy_loop),
]

MISTAKES = [
    (grader.check_feature_statistics, v.feature_statistics_logits, "not the logits"),
    (grader.check_feature_statistics, v.feature_statistics_variances, "only the variances"),
    (grader.check_feature_statistics, v.feature_statistics_biased, "biased covariance, divided by N instead of N - 1"),
    (grader.check_feature_statistics, v.feature_statistics_train_mode, "training mode"),
    (grader.check_feature_statistics, v.feature_statistics_with_grad, "with gradients on"),
    (grader.check_feature_statistics, v.feature_statistics_one_batch, "all N images in one call"),
    (grader.check_feature_statistics, v.feature_statistics_default_batch, "more than batch_size = 128"),
    (grader.check_feature_statistics, v.feature_statistics_float32, "should be float64"),
    (grader.check_feature_statistics, v.feature_statistics_rowvar, "rowvar=False"),
    (grader.check_feature_statistics, v.feature_statistics_last_batch, "only the last batch"),
    (grader.check_frechet_distance, v.frechet_distance_complex, "(?s)complex number.*imaginary residue"),
    (grader.check_frechet_distance, v.frechet_distance_no_factor_two, "factor 2"),
    (grader.check_frechet_distance, v.frechet_distance_elementwise, "square root of each entry"),
    (grader.check_frechet_distance, v.frechet_distance_norm, "not its square"),
    (grader.check_frechet_distance, v.frechet_distance_product_of_roots, r"sqrtm\(Sigma_1\) @ sqrtm\(Sigma_2\)"),
    (grader.check_frechet_distance, v.frechet_distance_no_sqrt, "square root is missing"),
    (grader.check_frechet_distance, v.frechet_distance_unclipped_eigh, "(?s)NaN.*clip them at 0"),
    (grader.check_frechet_distance, v.frechet_distance_in_place_offset, "changed its argument sigma1 in place"),
    (grader.check_frechet_distance, v.frechet_distance_always_offset, "offset always added"),
    (grader.check_kernel_inception_distance, v.kid_biased, "(?s)the biased estimate.*keep their diagonal"),
    (grader.check_kernel_inception_distance, v.kid_degree_two, "squared, not cubed"),
    (grader.check_kernel_inception_distance, v.kid_no_scale, "has no 1/D"),
    (grader.check_kernel_inception_distance, v.kid_sqrt_scale, r"divides by sqrt\(D\), not D"),
    (grader.check_kernel_inception_distance, v.kid_cross_off_diagonal, "cross term leaves out its diagonal"),
    (grader.check_kernel_inception_distance, v.kid_std, "(?s)standard error.*is not their mean's standard error"),
    (grader.check_kernel_inception_distance, v.kid_ddof0, "divided by S - 1"),
    (grader.check_kernel_inception_distance, v.kid_interleaved, "subsets are interleaved"),
    (
        grader.check_kernel_inception_distance,
        v.kid_random_subsets,
        "(?s)the KID does not match.*not rows drawn at random",
    ),
    (grader.check_inception_score, v.inception_score_reversed, "KL is reversed"),
    (grader.check_inception_score, v.inception_score_mean_of_exp, r"the mean of exp\(KL\)"),
    (grader.check_inception_score, v.inception_score_no_exp, "the exp is missing"),
    (grader.check_inception_score, v.inception_score_sum, "summed over the images"),
    (grader.check_inception_score, v.inception_score_marginal_over_classes, "averaged over the classes"),
    (grader.check_inception_score, v.inception_score_mean_of_log, "log p\\(y\\) is the mean of log p\\(y\\|x\\)"),
    (grader.check_inception_score, v.inception_score_naive_log, r"0 \* log 0"),
]

globals().update(proofs(3, CORRECT, MISTAKES))
