"""The proof that Part 4's graders grade: they pass the reference and other correct ways of writing each step, and
fail each common mistake with a message that names it."""

import graders.part4 as grader
import tests.variants_part4 as v
from solutions import part4 as ref
from tests.proofs import proofs

CORRECT = [
    (grader.check_cosine_schedule, ref.cosine_schedule),
    (grader.check_cosine_schedule, v.cosine_schedule_loop),
    (grader.check_cosine_schedule, v.cosine_schedule_numpy),
    (grader.check_cosine_schedule, v.cosine_schedule_float32),
    (grader.check_predict_x0, ref.predict_x0),
    (grader.check_predict_x0, v.predict_x0_via_reconstruct),
    (grader.check_predict_x0, v.predict_x0_indexing),
    (grader.check_ddim_step, ref.ddim_step),
    (grader.check_ddim_step, v.ddim_step_coefficients),
    (grader.check_ddim_step, v.ddim_step_via_predict),
    (grader.check_ddim_sample, ref.ddim_sample),
    (grader.check_ddim_sample, v.ddim_sample_indexed),
    (grader.check_ddim_sample, v.ddim_sample_with_own_step),
    (grader.check_drop_labels, ref.drop_labels),
    (grader.check_drop_labels, v.drop_labels_bernoulli),
    (grader.check_drop_labels, v.drop_labels_numpy),
    (grader.check_conditional_unet, ref.ConditionalUnet),
    (grader.check_conditional_unet, v.ConditionalUnetOwnForward),
    (grader.check_conditional_unet, v.ConditionalUnetStacked),
    (grader.check_conditional_loss, ref.conditional_loss),
    (grader.check_conditional_loss, v.conditional_loss_by_hand),
    (grader.check_guided_eps, ref.guided_eps),
    (grader.check_guided_eps, v.guided_eps_einops),
    (grader.check_guided_eps, v.guided_eps_unconditional_first),
]

MISTAKES = [
    (grader.check_cosine_schedule, v.cosine_schedule_no_clip, "not clipped at 0.999"),
    (grader.check_cosine_schedule, v.cosine_schedule_float16, "rounding: computed in float16"),
    (grader.check_cosine_schedule, v.cosine_schedule_no_offset, "offset s is missing"),
    (grader.check_cosine_schedule, v.cosine_schedule_unnormalized, "not normalized by f\\(0\\)"),
    (grader.check_cosine_schedule, v.cosine_schedule_shifted_ratio, "ratio is shifted by one step"),
    (grader.check_predict_x0, v.predict_x0_sign, "added, not subtracted"),
    (grader.check_predict_x0, v.predict_x0_no_sqrt, "square root is missing"),
    (grader.check_predict_x0, v.predict_x0_alpha, "alpha_t where alpha_bar_t belongs"),
    (grader.check_ddim_step, v.ddim_step_eta_misplaced, "eta is misplaced"),
    (grader.check_ddim_step, v.ddim_step_sigma_beta, "sigma\\^2 = beta_t is DDPM's other choice"),
    (grader.check_ddim_step, v.ddim_step_t_prev_off_by_one, "off by one in t_prev"),
    (grader.check_ddim_step, v.ddim_step_noise_at_eta_0, "at eta = 0 a DDIM step adds no noise"),
    (grader.check_ddim_step, v.ddim_step_direction_ignores_sigma, "direction term ignores sigma"),
    (grader.check_ddim_step, v.ddim_step_alpha_bar_0_is_alpha_bar_1, "alpha_bar_0 = 1"),
    (
        grader.check_ddim_step,
        v.ddim_step_after_wrong_predict_x0,
        "(?s)first: your `predict_x0`, which this step calls, fails its own check \\(.*added, not subtracted",
    ),
    (grader.check_ddim_step, v.ddim_step_alpha_bar_0_is_0, "(?s)returned NaN or inf.*0 \\* NaN is NaN"),
    (grader.check_ddim_sample, v.ddim_sample_ascending, "called at T first"),
    (grader.check_ddim_sample, v.ddim_sample_stops_at_tau_1, "one more step, to t_prev = 0"),
    (grader.check_ddim_sample, v.ddim_sample_previous_step, "t_prev is the previous entry tau_\\{i-1\\}"),
    (grader.check_ddim_sample, v.ddim_sample_ignores_x_T, "start from x_T when it is given"),
    (grader.check_drop_labels, v.drop_labels_one_minus_p, "probability 1 - p"),
    (grader.check_drop_labels, v.drop_labels_zero, "label 0 is a real class"),
    (grader.check_drop_labels, v.drop_labels_whole_batch, "one random number per label"),
    (grader.check_drop_labels, v.drop_labels_in_place, "changed the labels it was given"),
    (grader.check_conditional_unet, v.ConditionalUnetNoNullRow, "'no label' token"),
    (grader.check_conditional_unet, v.ConditionalUnetNoneIsZero, "labels=None was read as label 0"),
    (grader.check_conditional_unet, v.ConditionalUnetIgnoresLabels, "the labels are ignored"),
    (grader.check_conditional_loss, v.conditional_loss_no_drop, "no label was dropped"),
    (grader.check_conditional_loss, v.conditional_loss_one_minus_p, "probability 1 - p_uncond"),
    (grader.check_conditional_loss, v.conditional_loss_against_x0, "compared with x_0"),
    (grader.check_conditional_loss, v.conditional_loss_one_t, "(?s)same t.*one t drawn for the whole batch"),
    (
        grader.check_conditional_loss,
        v.conditional_loss_after_wrong_drop_labels,
        "(?s)no label was dropped.*first: your `drop_labels`, which this step calls, fails its own check",
    ),
    (
        grader.check_conditional_loss,
        v.conditional_loss_after_wrong_noise_img,
        "(?s)first: your `noise_img`, which this step calls, fails its own check",
    ),
    (grader.check_guided_eps, v.guided_eps_signs_swapped, "signs are swapped"),
    (grader.check_guided_eps, v.guided_eps_scale_convention, "guidance-scale convention"),
    (grader.check_guided_eps, v.guided_eps_two_calls, "call the model once, on a batch of 2B"),
    (grader.check_guided_eps, v.guided_eps_label_zero, "used label 0"),
]

globals().update(proofs(4, CORRECT, MISTAKES))
