"""Part 1: the DDPM forward process, its loss and its sampler, on tiny color-gradient images.

Follows Ho, Jain and Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS 2020): section 2 (eq. 2 and eq. 4),
section 3.2 (eq. 11, the noise-predicting parameterization), Algorithm 1 (training) and Algorithm 2 (sampling).

Paper symbols and their names here:

    beta_t      betas[t - 1], NoiseSchedule.beta(t)          variance of the noise added at step t
    alpha_t     1 - beta_t, NoiseSchedule.alpha(t)
    alpha_bar_t prod_{s=1..t} alpha_s, NoiseSchedule.alpha_bar(t)
    x_0, x_t    a clean image, the same image after t steps of noise
    eps         the standard Gaussian noise that made x_t from x_0
    eps_theta   the model: eps_theta(x_t, t) predicts eps

Time-step convention, the same in every function of the course: t counts steps of noise and runs over
{1, ..., T}, both ends included. x_t has had t steps applied, so alpha_bar_t multiplies the first t alphas, and
Python's 0-based tables hold step t at index t - 1.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from utils import get_device
from utils.engine.model import DiffusionModel, as_step_tensor, eps_from_x0, per_image, q_sample
from utils.engine.training import RunLog, TrainConfig, check_images, mean_loss, minibatches


def linear_schedule(max_steps: int, min_noise: float = 0.0001, max_noise: float = 0.02) -> Tensor:
    """The variances beta_1, ..., beta_T of the forward process, rising linearly (DDPM section 4).

    Args:
        max_steps: T, the number of noise steps.
        min_noise: beta_1, the variance of the first step.
        max_noise: beta_T, the variance of the last step.
    Returns:
        float32 tensor of shape (T,); entry t - 1 is beta_t.
    """
    # BEGIN SOLUTION
    return torch.linspace(min_noise, max_noise, max_steps, dtype=torch.float32)
    # END SOLUTION


def q_eq2(x: Tensor, num_steps: int, betas: Tensor) -> Tensor:
    """Noise `x` one step at a time, num_steps times: eq. 2, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I).

    Args:
        x: x_0, any shape, float.
        num_steps: how many steps to apply, from 0 to T.
        betas: shape (T,); betas[t - 1] is beta_t.
    Returns:
        x_{num_steps}, the same shape as x. `x` itself is left unchanged.
    """
    # BEGIN SOLUTION
    for t in range(1, num_steps + 1):
        beta = betas[t - 1]
        # beta is a variance: the noise is scaled by its square root.
        x = torch.sqrt(1 - beta) * x + torch.sqrt(beta) * torch.randn_like(x)
    return x
    # END SOLUTION


def q_eq4(x: Tensor, num_steps: int, betas: Tensor) -> Tensor:
    """Noise `x` by num_steps steps in one go: eq. 4, q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).

    Has exactly the distribution of q_eq2(x, num_steps, betas).

    Args:
        x: x_0, any shape, float.
        num_steps: t, from 0 to T.
        betas: shape (T,); betas[t - 1] is beta_t.
    Returns:
        x_t, the same shape as x.
    """
    # BEGIN SOLUTION
    # alpha_bar_t multiplies the first t alphas; for t = 0 the empty product is 1 and x comes back unchanged.
    alpha_bar = torch.prod(1 - betas[:num_steps])
    return torch.sqrt(alpha_bar) * x + torch.sqrt(1 - alpha_bar) * torch.randn_like(x)
    # END SOLUTION


class NoiseSchedule(nn.Module):
    """The tables beta_t, alpha_t and alpha_bar_t for t = 1, ..., T, kept as buffers, built from any betas.

    `NoiseSchedule(linear_schedule(1000))` is the schedule of the DDPM paper; any other increasing betas in (0, 1)
    work the same way (Part 4 builds a cosine one). T is the number of betas: it lives here, and every other piece
    of the course asks the schedule for it (`len(schedule)`).

    Buffers, not plain attributes: they are saved in `state_dict()` (a checkpoint carries the schedule its model was
    trained with) and `.to(device)` moves them along with the model they are attached to.

    Time-step convention: t in {1, ..., T}. `beta(t)`, `alpha(t)` and `alpha_bar(t)` take an int or a (B,) tensor of
    ints and return a float tensor of the same shape; alpha_bar(t) = alpha_1 * ... * alpha_t, so alpha_bar(1) = alpha_1.

    Args:
        betas: beta_1, ..., beta_T, float, shape (T,); the tables are made on its device, in its dtype.
    Buffers:
        betas, alphas, alpha_bars: shape (T,); index t - 1 holds step t.
    """

    betas: Tensor
    alphas: Tensor
    alpha_bars: Tensor

    def __init__(self, betas: Tensor):
        super().__init__()
        if not isinstance(betas, Tensor) or betas.ndim != 1 or len(betas) == 0 or not betas.is_floating_point():
            raise TypeError(f"NoiseSchedule takes the betas, a float tensor of shape (T,); got {betas!r:.80}")
        # BEGIN SOLUTION
        alphas = 1 - betas
        self.register_buffer("betas", betas.clone())
        self.register_buffer("alphas", alphas)
        self.register_buffer("alpha_bars", torch.cumprod(alphas, dim=0))
        # END SOLUTION

    def steps(self, t: int | Tensor) -> Tensor:
        """`t` as a long tensor on the schedule's device, after checking that every value lies in {1, ..., T}."""
        if isinstance(t, int) and not isinstance(t, bool):  # checked where it lives, on the host
            if not 1 <= t <= len(self):
                raise IndexError(f"time steps run from 1 to T = {len(self)}; got {t}")
            return as_step_tensor(t, self.betas.device)
        t = as_step_tensor(t, self.betas.device)
        if t.numel():
            # one read of the device for both ends: each read makes the host wait for a GPU to catch up
            low, high = torch.stack(torch.aminmax(t)).tolist()
            if low < 1 or high > len(self):
                raise IndexError(f"time steps run from 1 to T = {len(self)}; got values from {low} to {high}")
        return t

    def beta(self, t: int | Tensor) -> Tensor:
        """beta_t, for an int t or a (B,) tensor of ints in {1, ..., T}."""
        # BEGIN SOLUTION
        return self.betas[self.steps(t) - 1]
        # END SOLUTION

    def alpha(self, t: int | Tensor) -> Tensor:
        """alpha_t = 1 - beta_t."""
        # BEGIN SOLUTION
        return self.alphas[self.steps(t) - 1]
        # END SOLUTION

    def alpha_bar(self, t: int | Tensor) -> Tensor:
        """alpha_bar_t = alpha_1 * ... * alpha_t: how much of x_0 survives in x_t (eq. 4)."""
        # BEGIN SOLUTION
        return self.alpha_bars[self.steps(t) - 1]
        # END SOLUTION

    def __len__(self) -> int:
        """T, the number of noise steps: the length of the betas."""
        return self.betas.shape[0]


def noise_img(
    img: Tensor, noise_schedule: NoiseSchedule, max_steps: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Noise each image of a batch by its own random number of steps, in closed form (eq. 4).

    Args:
        img: x_0, shape (B, C, H, W), float, values in [-1, 1].
        noise_schedule: the schedule to noise with.
        max_steps: t is drawn uniformly from {1, ..., max_steps}; None means T = len(noise_schedule).
    Returns:
        num_steps: t per image, shape (B,), torch.long, on img's device.
        noise: eps ~ N(0, I), the unscaled noise, shape (B, C, H, W).
        noised: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, shape (B, C, H, W).
    """
    if max_steps is None:
        max_steps = len(noise_schedule)
    # BEGIN SOLUTION
    # 1. one t per image; randint's upper end is exclusive, so max_steps + 1 lets t reach T.
    num_steps = torch.randint(1, max_steps + 1, (img.shape[0],), device=img.device)
    # 2. standard Gaussian noise, unscaled: this is what the model learns to predict.
    noise = torch.randn_like(img)
    # 3. eq. 4 with a per-image alpha_bar_t broadcast over (C, H, W): q_eq4 took one t, so the given q_sample does it.
    alpha_bar = per_image(noise_schedule.alpha_bar(num_steps), img)
    return num_steps, noise, q_sample(img, noise, alpha_bar)
    # END SOLUTION


def reconstruct(noisy_img: Tensor, noise: Tensor, num_steps: Tensor, noise_schedule: NoiseSchedule) -> Tensor:
    """Recover x_0 from x_t and the noise in it: eq. 4 solved for x_0, x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).

    With the true noise this undoes noise_img exactly; with a model's predicted noise it shows what the model sees.

    Args:
        noisy_img: x_t, shape (B, C, H, W).
        noise: eps (true or predicted), shape (B, C, H, W).
        num_steps: t per image, shape (B,), ints in {1, ..., T}.
        noise_schedule: the schedule x_t was made with.
    Returns:
        x_0, shape (B, C, H, W).
    """
    # BEGIN SOLUTION
    alpha_bar = per_image(noise_schedule.alpha_bar(num_steps), noisy_img)
    return (noisy_img - (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt()
    # END SOLUTION


def q_posterior(x_t: Tensor, x_0: Tensor, num_steps: Tensor, noise_schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """The posterior q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I): where one step back lands when x_0 is known.

        mu_tilde_t   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                       + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t        (DDPM eq. 7)
        beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t                      (DDPM eq. 7)

    with alpha_bar_0 = 1 (no noise at all), so at t = 1 the mean is x_0 and the variance 0. The schedule's tables
    start at t = 1: alpha_bar_0 is not in them.

    Args:
        x_t: shape (B, C, H, W), float.
        x_0: the clean images, shape (B, C, H, W).
        num_steps: t per image, shape (B,), ints in {1, ..., T}.
        noise_schedule: the schedule x_t was made with.
    Returns:
        mean: mu_tilde_t, shape (B, C, H, W), the dtype of x_t.
        variance: beta_tilde_t per image, shape (B,), the dtype of the schedule's tables.
    """
    # BEGIN SOLUTION
    # 1. the tables at t, and alpha_bar_{t-1}: looked up at max(t - 1, 1), then set to alpha_bar_0 = 1 where t = 1
    beta, alpha, alpha_bar = (
        f(num_steps) for f in (noise_schedule.beta, noise_schedule.alpha, noise_schedule.alpha_bar)
    )
    previous = noise_schedule.alpha_bar((num_steps - 1).clamp(min=1))
    alpha_bar_prev = torch.where(num_steps > 1, previous, torch.ones_like(previous))
    # 2. eq. 7: a weighted mean of x_0 and x_t, and the variance that the two end points leave
    coef_x0 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    coef_xt = alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    mean = per_image(coef_x0, x_0) * x_0 + per_image(coef_xt, x_t) * x_t
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    # END SOLUTION


@dataclass(frozen=True)
class TinyDiffuserConfig:
    """Sizes of Part 1's MLP denoiser."""

    image_shape: tuple[int, int, int] = (3, 4, 5)  # (C, H, W) of the gradient images
    hidden_size: int = 128  # width of every hidden layer
    n_hidden_layers: int = 1  # Linear -> ReLU blocks before the output layer


class TinyDiffuser(DiffusionModel):
    """An MLP that guesses the clean image x_0, and so predicts the noise: eps_theta(x_t, t) by eq. 4.

        x0_hat = MLP([x_t flattened, t / T])                          n_hidden_layers of Linear -> ReLU, then Linear
        eps_theta(x_t, t) = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 - alpha_bar_t)     eq. 4 solved for eps

    The model still predicts the noise, so the loss (eq. 14) and the sampler (Algorithm 2) are the paper's: given x_t
    and t, eq. 4 ties eps and x_0 one to one, and a guess of either is a guess of both. Guessing x_0 is what a small
    MLP does well: near t = 1 the noise in x_t is a faint residue that must be scaled up by 1 / sqrt(1 - alpha_bar_t),
    a gain that changes with t (up to 100 with the paper's betas), and here the formula applies it, not the network.
    Far too small for real images, and enough for color gradients, which differ only in two colors and an angle.

    Args:
        config: the sizes.
        noise_schedule: the schedule it denoises for: T = len(noise_schedule) scales t, and alpha_bar_t converts.
    """

    def __init__(self, config: TinyDiffuserConfig, noise_schedule: NoiseSchedule | None = None):
        super().__init__(config, noise_schedule)
        # BEGIN SOLUTION
        n_pixels = math.prod(config.image_shape)
        # + 1 input for t, so one network serves every noise level.
        layers, width = [], n_pixels + 1
        for _ in range(config.n_hidden_layers):
            layers += [nn.Linear(width, config.hidden_size), nn.ReLU()]
            width = config.hidden_size
        self.model = nn.Sequential(*layers, nn.Linear(width, n_pixels))
        # END SOLUTION

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        """Predict the noise in `images`.

        Args:
            images: x_t, shape (B, C, H, W).
            num_steps: t, shape (B,), ints in {1, ..., T}; the network sees t / T, a number in (0, 1], with
                T = len(self.noise_schedule).
        Returns:
            eps_theta(x_t, t), shape (B, C, H, W), the dtype of `images`.
        """
        # BEGIN SOLUTION
        channels, height, width = self.image_shape
        pixels = rearrange(images, "b c h w -> b (c h w)")
        # 1. t scaled to (0, 1]: a raw t up to T would dwarf the pixel inputs.
        t = rearrange(num_steps.to(pixels.dtype) / len(self.noise_schedule), "b -> b 1")
        x0_hat = rearrange(self.model(torch.cat([pixels, t], dim=1)), "b (c h w) -> b c h w", c=channels, h=height)
        # 2. the noise that takes x0_hat to x_t (eq. 4 solved for eps), with each image's own alpha_bar_t
        return eps_from_x0(images, x0_hat, per_image(self.noise_schedule.alpha_bar(num_steps), images))
        # END SOLUTION


def diffusion_loss(model: DiffusionModel, x_0: Tensor) -> Tensor:
    """The loss of one minibatch: lines 2-5 of DDPM Algorithm 1, before the gradient step.

        t ~ Uniform({1, ..., T}), eps ~ N(0, I)                       one t and one eps per image
        x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps        eq. 4
        loss = || eps - eps_theta(x_t, t) ||^2                          eq. 14, the "simple" loss

    averaged over every pixel of every image. `train` below calls it on each minibatch, and so does the given loop
    that trains Part 3's U-Net (`utils.engine.training.fit`): this is the one place the course says what a
    diffusion model learns.

    Args:
        model: a DiffusionModel with its noise schedule, on x_0's device.
        x_0: a minibatch of clean images, shape (B, C, H, W), values in [-1, 1].
    Returns:
        The mean squared error, a scalar float tensor that carries gradients to the model's parameters.
    """
    # BEGIN SOLUTION
    # 1. t, eps and x_t for every image of the batch, from the model's own schedule
    num_steps, noise, x_t = noise_img(x_0, model.noise_schedule)
    # 2. the model predicts the noise, not the image; the loss compares it with the noise that made x_t
    return F.mse_loss(model(x_t, num_steps), noise)
    # END SOLUTION


def train(
    model: DiffusionModel,
    config: TrainConfig,
    trainset: Tensor,
    testset: Tensor | None = None,
    log: RunLog | None = None,
) -> DiffusionModel:
    """Train `model` to predict the noise in noised training images: DDPM Algorithm 1.

        repeat
            x_0 ~ q(x_0)                                       a minibatch of training images
            loss = diffusion_loss(model, x_0)                  lines 2-5
            gradient step on the loss                          Adam, step size config.lr
        until config.epochs passes over the training set

    Args:
        model: a DiffusionModel built with its noise schedule; trained in place, moved to the training device.
        config: epochs, learning rate (`lr`), batch size, device, seed.
        trainset: training images, shape (N, C, H, W), values in [-1, 1].
        testset: optional held-out images (M, C, H, W); after each epoch call `log_eval(model, testset, log, step,
            config)`, which logs their loss ("eval_loss") and a few reconstructions.
        log: where the losses go: call `log.log(step, loss=loss.item())` after every optimizer step, with `step`
            counting steps from 1. A new RunLog(config) if None (then `own_log` is True: close it with
            `log.finish()` before returning); pass your own to plot it afterwards.
    Returns:
        The trained model.
    """
    # Given: check the inputs, seed, and put the model (with its schedule) and the data on one device.
    trainset = check_images(trainset, "trainset")
    testset = check_images(testset, "testset") if testset is not None else None
    own_log = log is None
    log = RunLog(config) if own_log else log
    if config.seed is not None:
        torch.manual_seed(config.seed)
    model = model.to(get_device(config.device)).train()
    trainset = trainset.to(model.noise_schedule.betas.device)
    # BEGIN SOLUTION
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step = 0
    for _ in range(config.epochs):
        for x_0 in minibatches(trainset, config.batch_size, shuffle=True):
            loss = diffusion_loss(model, x_0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            log.log(step, loss=loss.item())  # stops the run with an error if the loss is NaN
        if testset is not None:
            log_eval(model, testset, log, step, config)
    if own_log:  # a log made here is closed here (a wandb run, when one was asked for)
        log.finish()
    return model
    # END SOLUTION


@torch.no_grad()
def log_eval(model: DiffusionModel, testset: Tensor, log: RunLog, step: int, config: TrainConfig) -> None:
    """Log the loss on held-out images and what the model makes of a few of them. Given code, used by `train`.

    The reconstructions noise the same images the same way every time (the random draws come from a fixed seed,
    without touching the training's random numbers), so that those logged at different steps can be compared.
    """
    device = model.noise_schedule.betas.device
    log.log(step, eval_loss=mean_loss(model, diffusion_loss, testset, config.batch_size))
    x_0 = testset[: config.n_images_to_log].to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        num_steps, _, x_t = noise_img(x_0, model.noise_schedule)
    predicted = reconstruct(x_t, model(x_t, num_steps), num_steps, model.noise_schedule)
    log.log_images(step, original=x_0, noised=x_t, reconstructed=predicted.clamp(-1, 1))


@torch.no_grad()
def sample(model: DiffusionModel, n_samples: int, return_all_steps: bool = False) -> Tensor:
    """Generate images from pure noise with a trained model: DDPM Algorithm 2.

        x_T ~ N(0, I)
        for t = T, ..., 1:
            z ~ N(0, I) if t > 1, else z = 0
            x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) + sigma_t z
        return x_0

    with sigma_t^2 = beta_t (section 3.2). Runs without gradients: T model calls would otherwise keep T graphs.

    Args:
        model: a trained DiffusionModel; its `noise_schedule` gives T and the tables, and the device to sample on
            is that of the schedule's tables (`model.noise_schedule.betas.device`).
        n_samples: how many images to generate.
        return_all_steps: also return every intermediate x_t.
    Returns:
        x_0, shape (n_samples, C, H, W); or with return_all_steps, the whole sequence x_T, x_{T-1}, ..., x_0 stacked
        into shape (T + 1, n_samples, C, H, W).
    """
    schedule = model.noise_schedule
    device = schedule.betas.device if schedule is not None else model.device  # the latter says how to give one
    # BEGIN SOLUTION
    x = torch.randn(n_samples, *model.image_shape, device=device)
    steps = [x]
    for t in range(len(schedule), 0, -1):
        # 1. the model's guess of the noise in x_t, with t passed for every sample
        eps = model(x, torch.full((n_samples,), t, device=device, dtype=torch.long))
        # 2. the mean of p(x_{t-1} | x_t), eq. 11
        beta, alpha, alpha_bar = schedule.beta(t), schedule.alpha(t), schedule.alpha_bar(t)
        x = (x - beta / torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha)
        # 3. fresh noise with variance sigma_t^2 = beta_t, except on the last step, whose mean is the answer
        if t > 1:
            x = x + torch.sqrt(beta) * torch.randn_like(x)
        steps.append(x)
    return torch.stack(steps) if return_all_steps else x
    # END SOLUTION
