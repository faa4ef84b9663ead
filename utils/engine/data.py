"""Batches of images drawn from a tensor that already sits on the training device.

A DataLoader over a TensorDataset indexes one image at a time in Python; for datasets that fit in memory (gradients,
FashionMNIST) one random permutation on the device and slicing are many times faster, and keep a GPU busy.
"""

from collections.abc import Iterator

import torch
from torch import Tensor


def check_images(images, name: str = "trainset") -> Tensor:
    """`images` must be a float tensor of shape (N, C, H, W); say clearly what came instead."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a tensor of images of shape (N, C, H, W); got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must hold floats in [-1, 1]; got {images.dtype} (did you forget normalize_img?)")
    if len(images) == 0:
        raise ValueError(f"{name} is empty")
    return images


def minibatches(
    images: Tensor,
    batch_size: int,
    shuffle: bool = True,
    labels: Tensor | None = None,
    drop_last: bool = False,
) -> Iterator[Tensor] | Iterator[tuple[Tensor, Tensor]]:
    """Yield batches of at most `batch_size` images, covering `images` (N, C, H, W) once, on its own device.

    With `labels` (N,), yield (images, labels) pairs instead, each label staying with its image. With `drop_last`,
    every batch has exactly `batch_size` images and the N mod batch_size left over are skipped (others, next time,
    when shuffled): a compiled step then never sees a new shape, which would make it compile again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), one per image; got {tuple(labels.shape)}")
    order = (
        torch.randperm(len(images), device=images.device)
        if shuffle
        else torch.arange(len(images), device=images.device)
    )
    end = len(images) - len(images) % batch_size if drop_last else len(images)
    for start in range(0, end, batch_size):
        batch = order[start : start + batch_size]
        yield images[batch] if labels is None else (images[batch], labels[batch])


def n_batches(n_images: int, batch_size: int) -> int:
    """How many batches `minibatches` yields for `n_images` images."""
    return -(-n_images // batch_size)
