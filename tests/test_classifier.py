"""The FashionMNIST classifier behind FMNIST-FID: its shapes, the committed weights, and the training entry point."""

import pytest
import torch

import utils.datasets.classifier as classifier_module
import utils.datasets.fashion_mnist as fm
from utils.datasets.classifier import WEIGHTS_PATH, FashionClassifier, accuracy, load_classifier


def test_shapes():
    model = FashionClassifier().eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert model.features(x).shape == (4, FashionClassifier.feature_dim)
    assert model(x).shape == (4, len(fm.CLASS_NAMES))


def test_committed_weights_load_small_and_frozen():
    assert WEIGHTS_PATH.is_file(), f"{WEIGHTS_PATH} is missing: it is committed with the course"
    assert WEIGHTS_PATH.stat().st_size < 4e6
    model = load_classifier("cpu")
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    saved = torch.load(WEIGHTS_PATH, weights_only=True)
    assert saved["test_accuracy"] >= 0.92  # what the training script measured on all 10,000 test images


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m utils.datasets.classifier --train"):
        load_classifier("cpu", tmp_path / "nothing.pt")


@pytest.mark.skipif(
    not (fm.debian_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"the real FashionMNIST test files are not in {fm.debian_dir()}",
)
def test_accuracy_on_real_test_images(tmp_path):
    images, labels = fm.load_fashion_mnist("test", data_dir=tmp_path, download=False, allow_sample=False)
    # 2,000 images keep this quick; the standard error of the accuracy is then about 0.006, hence the margin.
    assert accuracy(load_classifier("cpu"), images[:2000], labels[:2000]) >= 0.90


def test_training_entry_point_on_a_toy_dataset(monkeypatch, tmp_path):
    """`python -m utils.datasets.classifier --train` end to end, on 256 easy images so that it takes a second."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(256) % 2
    # Class 0 is dark in the top half, class 1 in the bottom half (the training's horizontal flips keep that).
    images = torch.rand(256, 1, 28, 28, generator=generator) * 0.2 - 0.1
    images[labels == 0, :, :14] -= 0.8
    images[labels == 1, :, 14:] -= 0.8

    monkeypatch.setattr(
        classifier_module, "load_fashion_mnist", lambda split, device=None: (images.to(device), labels.to(device))
    )
    out = tmp_path / "weights.pt"
    assert classifier_module.main(["--train", "--epochs", "2", "--device", "cpu", "--out", str(out)]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["test_accuracy"] > 0.9 and saved["train_seconds"] > 0
    model = load_classifier("cpu", out)
    assert accuracy(model, images, labels) == saved["test_accuracy"]
