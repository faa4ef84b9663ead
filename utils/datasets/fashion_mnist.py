"""FashionMNIST (Xiao, Rasul and Vollgraf, 2017) as tensors in [-1, 1], read from the dataset's original IDX files.

    images, labels = load_fashion_mnist("train")   # (60000, 1, 28, 28) float32 in [-1, 1], (60000,) long

Each of the four files is taken from the first of these places that has it:
    1. the project's data cache, `<repo>/data/fashion-mnist/` (or `$DDPM_DATA_DIR`, or the `data_dir` argument);
    2. the Debian/Ubuntu package's copy, `/usr/share/datasets/fashion-mnist/` (apt-get install dataset-fashion-mnist;
       `$DDPM_DEBIAN_DIR` points elsewhere, which is how tests and CI hide the package);
    3. a download from the dataset's official host into the data cache, with a progress bar.
Whatever its source, a file is checked before use: its gzip stream, the IDX magic number, the dimensions, the length
of the payload and the SHA-256 of its content. A file that fails a check is never used: the error names the file and
says how to replace it. With no file and no network, loading fails at once with the ways to get the data.

The one exception: in CI mode (`utils.IS_CI`), or with `allow_sample=True`, a split that cannot be had from any of
the three places is served from the 2,000 test images that ship with the course (`fashion_mnist_sample/`, see its
README), with a printed note. Then the train and the test split hold the same images: the code runs, the scores mean
nothing.

The IDX format (from the MNIST page): big-endian; a magic number made of two zero bytes, a type byte (0x08 for
unsigned bytes) and the number of dimensions; one uint32 per dimension; then the values in row-major order.
"""

import gzip
import hashlib
import os
import struct
import sys
import tempfile
import traceback
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor
from tqdm.auto import tqdm

from utils import REPO_ROOT

DEFAULT_DATA_DIR = REPO_ROOT / "data" / "fashion-mnist"
DATA_DIR_ENV = "DDPM_DATA_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_DIR_ENV = "DDPM_DEBIAN_DIR"  # where to look instead of DEBIAN_DIR; an empty folder hides the package
READERS_ENV = "DDPM_DATA_READERS"  # CI: a file listing the tests that reached for the data (`_note_reader`)
DEBIAN_PACKAGE = "dataset-fashion-mnist"
SAMPLE_DIR = Path(__file__).resolve().parent / "fashion_mnist_sample"
# The host the dataset's authors publish the files on. An S3 website endpoint serves plain HTTP only; the checksums
# below, not the transport, are what make a download trustworthy.
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# Seconds to wait for the host before giving up: offline, the loader must fail at once, not hang.
DOWNLOAD_TIMEOUT_S = 10.0

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

IDX_UBYTE = 0x08  # the IDX type byte for unsigned 8-bit values, the only type FashionMNIST uses


@dataclass(frozen=True)
class IdxFile:
    """One of the dataset's four files and what it must contain."""

    name: str  # the file name, on the host and on disk
    shape: tuple[int, ...]  # the dimensions its IDX header must declare
    md5: str  # MD5 of the .gz as published by the dataset's authors: checks a fresh download byte for byte
    sha256: str  # SHA-256 of the decompressed IDX bytes: checks any copy, whatever its gzip header says


# The Debian package holds the same content under a different gzip header: Debian's reproducible-build tooling drops
# the stored file name and resets the time stamp, so its .gz files are 23-24 bytes shorter (the file name) and have
# other MD5s, while the compressed data and the IDX content are the originals. Hence two checksums: the published MD5
# for what the host serves, and the SHA-256 of the content (computed from the Debian files, whose headers, counts and
# 6,000 / 1,000 images per class match the dataset's description) for every copy.
FILES: dict[str, tuple[IdxFile, IdxFile]] = {
    "train": (
        IdxFile(
            "train-images-idx3-ubyte.gz",
            (60000, 28, 28),
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        IdxFile(
            "train-labels-idx1-ubyte.gz",
            (60000,),
            "25c81989df183df01b3e8a0aad5dffbe",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
    ),
    "test": (
        IdxFile(
            "t10k-images-idx3-ubyte.gz",
            (10000, 28, 28),
            "bef4ecab320f06d8554ea6380940ec79",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        IdxFile(
            "t10k-labels-idx1-ubyte.gz",
            (10000,),
            "bb300cfdad3c16e7a12a480ee83cd310",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
}


# The shipped sample: the first 2,000 images and labels of the test split, cut from the files above (see its README).
# Only the content's SHA-256 matters: it is read from the package, never downloaded.
SAMPLE_SIZE = 2000
SAMPLE_FILES: tuple[IdxFile, IdxFile] = (
    IdxFile(
        "t10k-images-idx3-ubyte.gz",
        (SAMPLE_SIZE, 28, 28),
        "60446bba50d300cf329f13c228582885",
        "862035b0a96959b614c9574f4c2b0ae9584ca234813e8d6d7adb7838b12ca46b",
    ),
    IdxFile(
        "t10k-labels-idx1-ubyte.gz",
        (SAMPLE_SIZE,),
        "3a5ecd4e1a5ee7a9568063426d752435",
        "aa3f574d30afaf0d4d9da084a6f8541771e20693d6a97fae6e9a4953fca8f078",
    ),
)


class CorruptFileError(ValueError):
    """A dataset file exists but is damaged: truncated, not gzip, not IDX, the wrong size or the wrong content."""


class DatasetUnavailableError(FileNotFoundError):
    """A dataset file is in none of the places the loader looks, and could not be downloaded."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows: the message alone, not the loader's frames. The cell still fails, so "Run all" stops."""
        first, *rest = str(self).splitlines()
        return [f"\x1b[31m{type(self).__name__}: {first}\x1b[0m", *rest]


# --------------------------------------------------------------------------------------------------------------------
# Public entry point


def load_fashion_mnist(
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    device: str | torch.device | None = None,
    allow_sample: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """The FashionMNIST `split` ("train": 60,000 images, or "test": 10,000) as tensors on `device`.

    Args:
        split: "train" or "test".
        data_dir: the data cache to read from and download into; default `$DDPM_DATA_DIR`, else
            `<repo>/data/fashion-mnist/`.
        download: fetch missing files from the official host. With False, a missing file is an error at once.
        device: where the tensors go; None keeps them on the CPU. Conversion to float happens there, so only the
            uint8 pixels travel to a GPU.
        allow_sample: when the split is nowhere to be had, serve the 2,000 shipped test images instead (for either
            split), with a printed note. None: only in CI mode (`utils.IS_CI`); False: never, fail instead.
    Returns:
        images: float32, shape (N, 1, 28, 28), pixel p in {0, ..., 255} mapped to p / 127.5 - 1, in [-1, 1].
        labels: long, shape (N,), class indices into CLASS_NAMES.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}; got {split!r}")
    cache = Path(data_dir) if data_dir is not None else default_data_dir()
    image_spec, label_spec = FILES[split]
    try:
        image_path, label_path = locate(image_spec, cache, download), locate(label_spec, cache, download)
    except DatasetUnavailableError as e:
        if not _sample_allowed(allow_sample):
            raise
        _note_sample(split, str(e).splitlines()[0])
        return load_sample(device)
    return _tensors(image_path, image_spec, label_path, label_spec, device)


def load_sample(device: str | torch.device | None = None) -> tuple[Tensor, Tensor]:
    """The 2,000 test images shipped with the course and their labels, as `load_fashion_mnist` returns a split."""
    _note_reader()
    image_spec, label_spec = SAMPLE_FILES
    return _tensors(SAMPLE_DIR / image_spec.name, image_spec, SAMPLE_DIR / label_spec.name, label_spec, device)


def _tensors(
    image_path: Path, image_spec: IdxFile, label_path: Path, label_spec: IdxFile, device: str | torch.device | None
) -> tuple[Tensor, Tensor]:
    """Images (N, 1, 28, 28) in [-1, 1] and labels (N,) from a checked pair of IDX files."""
    pixels = read_idx_gz(image_path, image_spec)
    classes = read_idx_gz(label_path, label_spec)
    if len(pixels) != len(classes):
        raise CorruptFileError(
            f"{image_spec.name} holds {len(pixels)} images but {label_spec.name} holds {len(classes)} labels"
        )
    images = torch.from_numpy(pixels).to(device)
    images = rearrange(images, "n h w -> n 1 h w").float() / 127.5 - 1
    labels = torch.from_numpy(classes.astype(np.int64)).to(device)
    return images, labels


def _note_reader() -> None:
    """Where `$DDPM_DATA_READERS` names a file, add to it the test file that is reaching for the data: CI's second
    pass, with the dataset hidden, reruns just those (.ci/run). A call while pytest collects is put down to the
    nearest test file on the stack."""
    record = os.environ.get(READERS_ENV)
    if not record:
        return
    reader = os.environ.get("PYTEST_CURRENT_TEST", "").partition("::")[0]
    if not reader:
        files = [f.filename for f in traceback.extract_stack() if Path(f.filename).name.startswith("test_")]
        reader = os.path.relpath(files[-1]) if files else ""
    with open(record, "a") as f:
        f.write(reader + "\n")


def default_data_dir() -> Path:
    """The data cache: `$DDPM_DATA_DIR` when set, else `<repo>/data/fashion-mnist/` (ignored by git)."""
    _note_reader()
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else DEFAULT_DATA_DIR


def debian_dir() -> Path:
    """Where the Debian package's files are looked for: `$DDPM_DEBIAN_DIR` when set, else DEBIAN_DIR."""
    _note_reader()
    from_env = os.environ.get(DEBIAN_DIR_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else DEBIAN_DIR


def _sample_allowed(allow_sample: bool | None) -> bool:
    if allow_sample is not None:
        return allow_sample
    import utils  # read at call time, so that a test can switch CI mode off

    return utils.IS_CI


_noted: set[str] = set()


def _note_sample(split: str, why: str) -> None:
    """Say once per split and process that the shipped sample stands in for the full data, and what that means."""
    if split in _noted:
        return
    _noted.add(split)
    print(
        f"note: {why}\n  So the {SAMPLE_SIZE:,} FashionMNIST test images shipped in {SAMPLE_DIR} stand in for the "
        f"{split} split (CI mode or allow_sample=True). Both splits are then these same images: the code runs, "
        "but scores such as FMNIST-FID mean nothing. For the full dataset, see the ways listed by "
        "load_fashion_mnist(..., allow_sample=False).",
        file=sys.stdout,
        flush=True,
    )


# --------------------------------------------------------------------------------------------------------------------
# Finding a file: cache, then Debian, then the official host


def locate(spec: IdxFile, cache: Path, download: bool = True) -> Path:
    """The path of the file `spec`: in `cache`, else in the Debian location, else freshly downloaded into `cache`."""
    for folder in (cache, debian_dir()):
        path = folder / spec.name
        if path.is_file():
            return path
    if not download:
        raise DatasetUnavailableError(_how_to_get_data(spec, cache, "downloading is switched off (download=False)"))
    try:
        return download_file(BASE_URL + spec.name, cache / spec.name, spec.md5)
    except (urllib.error.URLError, OSError) as e:  # URLError covers DNS failures; OSError timeouts and refusals
        reason = getattr(e, "reason", None) or e
        raise DatasetUnavailableError(_how_to_get_data(spec, cache, f"downloading it failed: {reason}")) from None


def _how_to_get_data(spec: IdxFile, cache: Path, why: str) -> str:
    return (
        f"FashionMNIST file {spec.name} is not in {cache} nor in {debian_dir()}, and {why}.\n"
        "Get the data in any one of three ways:\n"
        f"  1. put the four .gz files in the data cache {cache}, or set {DATA_DIR_ENV} to a folder that holds them "
        "(or pass data_dir=...);\n"
        f"  2. install the Debian/Ubuntu package: sudo apt-get install {DEBIAN_PACKAGE} "
        f"(it puts them in {DEBIAN_DIR});\n"
        f"  3. connect to the internet and load again with download=True: the files come from {BASE_URL}\n"
        f"Or, to check that code runs (not to train or score), pass allow_sample=True: the {SAMPLE_SIZE:,} test "
        "images shipped with the course then stand in for either split."
    )


def download_file(url: str, dest: Path, md5: str, timeout: float = DOWNLOAD_TIMEOUT_S, progress: bool = True) -> Path:
    """Download `url` to `dest`, showing progress, and keep it only if it is complete and its MD5 is `md5`.

    The bytes go to a temporary file next to `dest`, renamed to `dest` only once checked, so an interrupted or
    damaged download never sits where the loader would find it.
    """
    with urllib.request.urlopen(url, timeout=timeout) as response:  # offline, this fails before anything is created
        length = response.headers.get("Content-Length")
        total = int(length) if length is not None and length.isdigit() else None
        dest.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            received = 0
            with (
                os.fdopen(handle, "wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress
                ) as bar,
            ):
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise CorruptFileError(
                    f"the download of {url} was cut short: {received} of {total} bytes arrived. Load again to retry."
                )
            if digest.hexdigest() != md5:
                raise CorruptFileError(
                    f"the download of {url} has MD5 {digest.hexdigest()}, not the published "
                    f"{md5}: it is damaged or not the original file, and was not kept. Load again "
                    "to retry."
                )
            os.replace(tmp, dest)
            return dest
        finally:
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------------------
# Reading and checking a file


def read_idx_gz(path: Path, spec: IdxFile) -> np.ndarray:
    """The uint8 array in the gzipped IDX file `path`, after checking it against `spec`; raises CorruptFileError."""
    stat = path.stat()
    # Kept in memory by (path, size, modification time): a notebook that loads twice reads and checks once.
    return _read_checked(str(path), stat.st_size, stat.st_mtime_ns, spec).copy()


@lru_cache(maxsize=4)
def _read_checked(path: str, size: int, mtime_ns: int, spec: IdxFile) -> np.ndarray:
    try:
        raw = _gunzip(Path(path))
        array = parse_idx(raw)
        if array.shape != spec.shape:
            raise CorruptFileError(f"it declares dimensions {array.shape}; {spec.name} has {spec.shape}")
        content = hashlib.sha256(raw).hexdigest()
        if content != spec.sha256:
            raise CorruptFileError(
                f"its content has SHA-256 {content[:16]}..., not the original's "
                f"{spec.sha256[:16]}...: checksum mismatch, the values were altered"
            )
    except CorruptFileError as e:
        raise CorruptFileError(f"{path} is corrupt: {e}. {_how_to_replace(Path(path))}") from None
    array.setflags(write=False)
    return array


def _gunzip(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # BadGzipFile: not a gzip file at all; EOFError: the stream stops early (a truncated download); zlib.error
        # and a CRC failure (BadGzipFile too): the compressed bytes are damaged.
        raise CorruptFileError(f"it is not a complete, valid gzip file ({type(e).__name__}: {e})") from None


def parse_idx(raw: bytes) -> np.ndarray:
    """The array in the (decompressed) IDX bytes `raw`, as uint8 of the declared shape; raises CorruptFileError."""
    if len(raw) < 4:
        raise CorruptFileError(f"it is {len(raw)} bytes long, too short to hold an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != IDX_UBYTE or ndim == 0:
        raise CorruptFileError(
            f"bad magic number 0x{raw[:4].hex()}: an IDX file of unsigned bytes starts with "
            "00 00 08 and its number of dimensions"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptFileError(f"its header declares {ndim} dimensions but stops after {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(raw) - header
    if payload != expected:
        kind = "truncated" if payload < expected else "longer than declared"
        raise CorruptFileError(f"{kind}: dimensions {shape} need {expected} bytes of values, found {payload}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _how_to_replace(path: Path) -> str:
    if path.parent == debian_dir():
        return f"Reinstall the package: sudo apt-get install --reinstall {DEBIAN_PACKAGE}"
    return "Delete it and load again: the loader then takes the Debian copy or downloads a fresh one"
