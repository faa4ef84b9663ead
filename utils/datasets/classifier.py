"""A small CNN that recognises FashionMNIST clothes; Part 3 scores generated samples with its features.

The Fréchet Inception Distance (Heusel et al., 2017) compares the statistics of an Inception-v3 network's features on
real and generated images. Inception was trained on 299x299 colour photographs, and its weights cannot be downloaded
everywhere this course runs, so Part 3 uses this network instead: FMNIST-FID is the same formula on the
`features` of a classifier trained on FashionMNIST itself, and the "FMNIST score" the Inception Score's formula on its
class probabilities.

    python -m utils.datasets.classifier            # test accuracy of the committed weights
    python -m utils.datasets.classifier --train    # train (45 minutes on 2 busy CPU cores), save, print the accuracy

The weights live in `utils/weights/fmnist_classifier.pt` (a state_dict in float32, about 1 MB) and load with
`load_classifier()`.
"""

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from tqdm.auto import tqdm

from utils import get_device
from utils.datasets.fashion_mnist import CLASS_NAMES, load_fashion_mnist
from utils.engine.training import minibatches

WEIGHTS_PATH = Path(__file__).resolve().parents[1] / "weights" / "fmnist_classifier.pt"
TRAIN_COMMAND = "python -m utils.datasets.classifier --train"


class FashionClassifier(nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3 pixels), a 128-unit penultimate layer, and a linear head over 10 classes.

    `features(x)` is the penultimate layer before its ReLU: the 128 numbers that FMNIST-FID compares. Taken after the
    ReLU, some units are exactly 0 for every image, which makes FID's covariance singular; before it, every unit
    varies, and the features hold the same information. `forward(x)` gives the logits; softmax(logits) is the
    p(y | x) of the FMNIST score.
    """

    feature_dim = 128  # size of the penultimate layer, the D of FID's D x D covariances
    widths = (32, 64, 128)  # channels of the three conv blocks

    def __init__(self, dropout: float = 0.3):
        super().__init__()
        blocks = []
        in_channels = 1
        for width in self.widths:
            # bias=False: the BatchNorm right after the conv has its own shift.
            blocks += [
                nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = width
        self.body = nn.Sequential(*blocks)
        self.project = nn.Linear(self.widths[-1] * 3 * 3, self.feature_dim)
        self.dropout = nn.Dropout(dropout)  # active only in training: features() never sees it
        self.head = nn.Linear(self.feature_dim, len(CLASS_NAMES))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate pre-activations of images x, shape (B, 1, 28, 28) in [-1, 1]: shape (B, 128)."""
        h = self.body(x)  # (B, 128, 3, 3)
        return self.project(rearrange(h, "b c h w -> b (c h w)"))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of images x, shape (B, 1, 28, 28) in [-1, 1]: shape (B, 10)."""
        return self.head(self.dropout(F.relu(self.features(x))))


def load_classifier(device: str | torch.device | None = None, path: str | Path = WEIGHTS_PATH) -> FashionClassifier:
    """The trained classifier from the committed weights, in eval mode, frozen, on `device` (None: get_device())."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no classifier weights at {path}. They ship with the course (utils/weights/); restore them with "
            f"`git checkout -- {path.name}` in that folder, or train new ones with `{TRAIN_COMMAND}`."
        )
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = FashionClassifier()
    model.load_state_dict({name: value.float() for name, value in saved["state_dict"].items()})
    model.eval().requires_grad_(False)
    return model.to(get_device(device))


@torch.no_grad()
def classifier_features(classifier: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """`classifier.features` of `images` (N, 1, 28, 28) in [-1, 1], in eval mode, a batch at a time: (N, D) float64 on
    the CPU. What KID compares; FID's statistics of the same features are Part 3's `feature_statistics`."""
    classifier.eval()
    device = next(classifier.parameters()).device
    return torch.cat([classifier.features(batch.to(device)).cpu().double() for batch in images.split(batch_size)])


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of `images` (N, 1, 28, 28) whose most likely class under `model` is their label (N,)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size].to(device))
        correct += (logits.argmax(dim=1).cpu() == labels[start : start + batch_size].cpu()).sum().item()
    model.train(was_training)
    return correct / len(images)


# --------------------------------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """How `train_classifier` runs. The defaults reach 93.3% test accuracy (the committed weights)."""

    epochs: int = 8  # passes over the 60,000 training images
    batch_size: int = 128  # images per AdamW step
    lr: float = 3e-3  # peak learning rate of the one-cycle schedule (warm up, then anneal to ~0)
    weight_decay: float = 5e-4  # AdamW's decoupled weight decay, a mild regulariser
    flip: bool = True  # random horizontal flips: a left-facing shirt is still a shirt; costs nothing on tensors
    label_smoothing: float = 0.05  # softens the one-hot targets a little, so the net is not over-confident
    seed: int = 0  # for a run you can repeat
    threads: int = 2  # CPU threads torch may use (the course's machines share 2 cores)
    device: str | None = None  # None picks CUDA, then MPS, then the CPU
    progress: bool = True  # tqdm bar over the epochs


def train_classifier(config: ClassifierTrainConfig = ClassifierTrainConfig()) -> tuple[FashionClassifier, float]:
    """Train a FashionClassifier on the FashionMNIST training set; returns it (eval mode) and its test accuracy."""
    device = get_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    train_images, train_labels = load_fashion_mnist("train", device=device)
    test_images, test_labels = load_fashion_mnist("test", device=device)
    # channels_last makes the CPU's convolutions (oneDNN) about 1.4x faster here; on a GPU it is harmless.
    memory_format = torch.channels_last
    model = FashionClassifier().to(device, memory_format=memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_images) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch)
    # Index batches of images and labels together: draw a permutation of positions, then slice it.
    positions = torch.arange(len(train_images), device=device)
    bar = tqdm(range(config.epochs), desc="classifier", disable=not config.progress)
    for epoch in bar:
        model.train()
        for index in minibatches(positions, config.batch_size):
            x, y = train_images[index], train_labels[index]
            if config.flip:
                flip = torch.rand(len(x), device=device) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            loss = F.cross_entropy(
                model(x.contiguous(memory_format=memory_format)), y, label_smoothing=config.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        test_accuracy = accuracy(model, test_images, test_labels)
        bar.set_postfix(loss=f"{loss.item():.3f}", test_accuracy=f"{test_accuracy:.4f}")
        if not config.progress:
            print(f"epoch {epoch + 1}/{config.epochs}: loss {loss.item():.3f}, test accuracy {test_accuracy:.4f}")
    model = model.to(memory_format=torch.contiguous_format).eval()
    return model, test_accuracy


def save_classifier(model: FashionClassifier, path: str | Path = WEIGHTS_PATH, **info) -> Path:
    """Save `model`'s weights (float32 state_dict, on the CPU) with `info` (accuracy, timing) beside them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state_dict = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    torch.save({"state_dict": state_dict, **info}, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train or evaluate the FashionMNIST classifier behind FMNIST-FID.")
    parser.add_argument("--train", action="store_true", help="train new weights (otherwise evaluate the saved ones)")
    parser.add_argument("--epochs", type=int, default=ClassifierTrainConfig.epochs)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="where to save (or read) the weights")
    args = parser.parse_args(argv)
    if not args.train:
        model = load_classifier(args.device, args.out)
        images, labels = load_fashion_mnist("test")
        print(f"test accuracy of {args.out}: {accuracy(model, images, labels):.4f}")
        return 0
    config = ClassifierTrainConfig(epochs=args.epochs, device=args.device)
    start = time.perf_counter()
    model, test_accuracy = train_classifier(config)
    seconds = time.perf_counter() - start
    save_classifier(
        model,
        args.out,
        test_accuracy=test_accuracy,
        train_seconds=seconds,
        device=str(get_device(args.device)),
        config=asdict(config),
    )
    print(
        f"test accuracy: {test_accuracy:.4f} (10,000 test images) after {seconds / 60:.1f} min of training; "
        f"weights saved to {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
