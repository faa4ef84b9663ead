"""The FashionMNIST loader: IDX parsing, every way a file can be damaged, where files are looked for, the download
(served from memory, never from the network), the shipped sample and when it stands in, and, when the Debian package
is installed, the real files."""

import email.message
import gzip
import hashlib
import io
import struct
import time
import urllib.error
import urllib.request
import urllib.response
from pathlib import Path

import numpy as np
import pytest
import torch

import utils
import utils.datasets.fashion_mnist as fm
from utils.datasets.fashion_mnist import CorruptFileError, DatasetUnavailableError, IdxFile

# --------------------------------------------------------------------------------------------------------------------
# Tiny IDX files built here


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 00 00 08 ndim, one big-endian uint32 per dimension, the values."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


TINY_IMAGES = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4) * 5  # values 0, 5, ..., 235
TINY_IMAGES[-1, -1, -1] = 255  # so the tensors reach both ends, -1 and 1
TINY_LABELS = np.array([9, 0, 3], dtype=np.uint8)


def spec_for(name: str, array: np.ndarray) -> IdxFile:
    """An IdxFile for a tiny file, with its true checksums."""
    raw = idx_bytes(array)
    return IdxFile(name, array.shape, hashlib.md5(gz(raw)).hexdigest(), hashlib.sha256(raw).hexdigest())


TINY_FILES = {
    "train": (spec_for("train-images-idx3-ubyte.gz", TINY_IMAGES), spec_for("train-labels-idx1-ubyte.gz", TINY_LABELS)),
    "test": (
        spec_for("t10k-images-idx3-ubyte.gz", TINY_IMAGES[:2]),
        spec_for("t10k-labels-idx1-ubyte.gz", TINY_LABELS[:2]),
    ),
}
TINY_CONTENT = {
    "train-images-idx3-ubyte.gz": gz(idx_bytes(TINY_IMAGES)),
    "train-labels-idx1-ubyte.gz": gz(idx_bytes(TINY_LABELS)),
    "t10k-images-idx3-ubyte.gz": gz(idx_bytes(TINY_IMAGES[:2])),
    "t10k-labels-idx1-ubyte.gz": gz(idx_bytes(TINY_LABELS[:2])),
}


def write_files(folder: Path, names=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in TINY_CONTENT.items():
        if names is None or name in names:
            (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """The loader pointed at the tiny dataset: an empty cache, an empty 'Debian' folder, and no network, outside CI
    mode (as on a student's machine), so that the shipped sample never stands in unless a test asks for it."""
    monkeypatch.setattr(fm, "FILES", TINY_FILES)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.delenv(fm.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(fm.DEBIAN_DIR_ENV, raising=False)
    monkeypatch.setattr(utils, "IS_CI", False)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in this test")

    monkeypatch.setattr(fm, "download_file", no_network)
    (tmp_path / "debian").mkdir()
    return tmp_path


# --------------------------------------------------------------------------------------------------------------------
# Parsing


def test_parse_idx_reads_shape_and_values():
    np.testing.assert_array_equal(fm.parse_idx(idx_bytes(TINY_IMAGES)), TINY_IMAGES)
    np.testing.assert_array_equal(fm.parse_idx(idx_bytes(TINY_LABELS)), TINY_LABELS)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x09\x01" + struct.pack(">I", 3) + b"abc", "bad magic number"),  # type 0x09 (signed bytes)
        (b"\x01\x00\x08\x01" + struct.pack(">I", 3) + b"abc", "bad magic number"),  # not two zero bytes first
        (b"\x00\x00\x08\x00", "bad magic number"),  # zero dimensions
        (b"\x00\x00\x08\x03" + struct.pack(">I", 3), "header declares 3 dimensions"),
        (idx_bytes(TINY_IMAGES)[:-1], "truncated"),
        (idx_bytes(TINY_IMAGES) + b"\x00", "longer than declared"),
    ],
    ids=["too-short", "wrong-type", "nonzero-start", "no-dims", "short-header", "truncated", "too-long"],
)
def test_parse_idx_rejects(raw, message):
    with pytest.raises(CorruptFileError, match=message):
        fm.parse_idx(raw)


def test_read_checks_dimensions_and_checksum(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gz(idx_bytes(TINY_LABELS)))
    good = spec_for("labels.gz", TINY_LABELS)
    np.testing.assert_array_equal(fm.read_idx_gz(path, good), TINY_LABELS)
    with pytest.raises(CorruptFileError, match=r"declares dimensions \(3,\)"):
        fm.read_idx_gz(path, IdxFile("labels.gz", (4,), good.md5, good.sha256))
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        fm.read_idx_gz(path, IdxFile("labels.gz", (3,), good.md5, "0" * 64))


@pytest.mark.parametrize("damage", ["not gzip", "truncated gzip", "flipped byte"])
def test_read_rejects_damaged_gzip(tmp_path, damage):
    content = gz(idx_bytes(TINY_IMAGES))
    if damage == "not gzip":
        content = idx_bytes(TINY_IMAGES)  # the raw IDX, never compressed
    elif damage == "truncated gzip":
        content = content[: len(content) // 2]
    else:  # a byte of the compressed stream changed: the CRC (or the stream itself) no longer checks out
        middle = len(content) // 2
        content = content[:middle] + bytes([content[middle] ^ 0xFF]) + content[middle + 1 :]
    path = tmp_path / "images.gz"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match="corrupt"):
        fm.read_idx_gz(path, spec_for("images.gz", TINY_IMAGES))


# --------------------------------------------------------------------------------------------------------------------
# Where the files come from


def test_loads_from_cache_as_normalized_tensors(tiny):
    cache = write_files(tiny / "cache")
    images, labels = fm.load_fashion_mnist("train", data_dir=cache)
    assert images.shape == (3, 1, 4, 4) and images.dtype == torch.float32
    assert labels.dtype == torch.long and labels.tolist() == [9, 0, 3]
    expected = torch.from_numpy(TINY_IMAGES.astype(np.float32)).unsqueeze(1) / 127.5 - 1
    torch.testing.assert_close(images, expected)
    assert images.min() == -1 and images.max() == 1
    test_images, test_labels = fm.load_fashion_mnist("test", data_dir=cache)
    assert test_images.shape == (2, 1, 4, 4) and test_labels.tolist() == [9, 0]


def test_env_var_sets_the_cache(tiny, monkeypatch):
    cache = write_files(tiny / "from-env")
    monkeypatch.setenv(fm.DATA_DIR_ENV, str(cache))
    assert fm.default_data_dir() == cache
    assert fm.load_fashion_mnist("test")[1].tolist() == [9, 0]


def test_falls_back_to_debian_location(tiny):
    write_files(fm.DEBIAN_DIR)
    images, labels = fm.load_fashion_mnist("train", data_dir=tiny / "empty-cache")
    assert labels.tolist() == [9, 0, 3]


def test_cache_comes_before_debian(tiny):
    cache = write_files(tiny / "cache", names={"train-labels-idx1-ubyte.gz"})
    write_files(fm.DEBIAN_DIR)
    (fm.DEBIAN_DIR / "train-labels-idx1-ubyte.gz").write_bytes(b"broken")  # never read: the cache has this file
    assert fm.load_fashion_mnist("train", data_dir=cache)[1].tolist() == [9, 0, 3]


def test_corrupt_file_is_never_used(tiny):
    cache = write_files(tiny / "cache")
    (cache / "train-images-idx3-ubyte.gz").write_bytes(TINY_CONTENT["train-images-idx3-ubyte.gz"][:-10])
    write_files(fm.DEBIAN_DIR)  # a good copy elsewhere does not hide the damaged one
    with pytest.raises(CorruptFileError, match="(?s)train-images-idx3-ubyte.gz is corrupt.*Delete it"):
        fm.load_fashion_mnist("train", data_dir=cache)


def test_corrupt_debian_file_says_reinstall(tiny):
    write_files(fm.DEBIAN_DIR)
    (fm.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").write_bytes(gz(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x01"))
    with pytest.raises(CorruptFileError, match="apt-get install --reinstall dataset-fashion-mnist"):
        fm.load_fashion_mnist("test", data_dir=tiny / "empty-cache")


def test_offline_without_files_fails_at_once_naming_three_ways(tiny):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as error:
        fm.load_fashion_mnist("train", data_dir=tiny / "empty-cache")
    assert time.perf_counter() - start < 1.0
    message = str(error.value)
    assert "network disabled in this test" in message
    assert str(tiny / "empty-cache") in message and fm.DATA_DIR_ENV in message  # 1. the data cache
    assert "apt-get install dataset-fashion-mnist" in message  # 2. the Debian package
    assert "download=True" in message and fm.BASE_URL in message  # 3. the download
    assert "allow_sample=True" in message  # and the sample, for a check that code runs


def test_download_false_never_downloads(tiny, monkeypatch):
    monkeypatch.setattr(fm, "download_file", lambda *a, **k: pytest.fail("download_file called with download=False"))
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        fm.load_fashion_mnist("test", data_dir=tiny / "empty-cache", download=False)


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        fm.load_fashion_mnist("validation")


def test_debian_location_can_be_moved_or_hidden_by_env_var(tiny, monkeypatch):
    elsewhere = write_files(tiny / "debian-elsewhere")
    monkeypatch.setenv(fm.DEBIAN_DIR_ENV, str(elsewhere))
    assert fm.debian_dir() == elsewhere
    assert fm.load_fashion_mnist("test", data_dir=tiny / "empty-cache")[1].tolist() == [9, 0]
    write_files(fm.DEBIAN_DIR)  # the default location has the files, but the variable hides them
    monkeypatch.setenv(fm.DEBIAN_DIR_ENV, str(tiny / "empty-debian"))
    with pytest.raises(DatasetUnavailableError, match="empty-debian"):
        fm.load_fashion_mnist("test", data_dir=tiny / "empty-cache")


# --------------------------------------------------------------------------------------------------------------------
# The shipped sample, standing in when the full data cannot be had

SAMPLE_IMAGES = np.full((5, 4, 4), 200, dtype=np.uint8)
SAMPLE_LABELS = np.array([1, 2, 3, 4, 5], dtype=np.uint8)


@pytest.fixture
def tiny_sample(tiny, monkeypatch):
    """A generated 5-image 'sample' in place of the shipped one, beside the tiny dataset with nothing found."""
    folder = tiny / "sample"
    folder.mkdir()
    specs = (spec_for("t10k-images-idx3-ubyte.gz", SAMPLE_IMAGES), spec_for("t10k-labels-idx1-ubyte.gz", SAMPLE_LABELS))
    (folder / specs[0].name).write_bytes(gz(idx_bytes(SAMPLE_IMAGES)))
    (folder / specs[1].name).write_bytes(gz(idx_bytes(SAMPLE_LABELS)))
    monkeypatch.setattr(fm, "SAMPLE_DIR", folder)
    monkeypatch.setattr(fm, "SAMPLE_FILES", specs)
    monkeypatch.setattr(fm, "_noted", set())
    return tiny


def test_ci_mode_serves_both_splits_from_the_sample_and_says_so_once(tiny_sample, monkeypatch, capsys):
    monkeypatch.setattr(utils, "IS_CI", True)
    for split in ("train", "test", "train"):
        images, labels = fm.load_fashion_mnist(split, data_dir=tiny_sample / "empty-cache")
        assert labels.tolist() == [1, 2, 3, 4, 5] and images.shape == (5, 1, 4, 4)
        torch.testing.assert_close(images, torch.full((5, 1, 4, 4), 200 / 127.5 - 1))
    notes = capsys.readouterr().out
    assert notes.count("note: ") == 2  # once per split, not once per call
    assert "stand in for the train split" in notes and "stand in for the test split" in notes
    assert "Both splits are then these same images" in notes and "network disabled in this test" in notes


def test_outside_ci_a_missing_dataset_still_stops_unless_asked(tiny_sample, capsys):
    with pytest.raises(DatasetUnavailableError, match="allow_sample=True"):
        fm.load_fashion_mnist("train", data_dir=tiny_sample / "empty-cache")
    assert capsys.readouterr().out == ""
    assert fm.load_fashion_mnist("train", data_dir=tiny_sample / "empty-cache", allow_sample=True)[1].tolist() == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert "stand in for the train split" in capsys.readouterr().out


def test_the_sample_never_hides_real_files_or_damage(tiny_sample, monkeypatch):
    monkeypatch.setattr(utils, "IS_CI", True)
    cache = write_files(tiny_sample / "cache")
    assert fm.load_fashion_mnist("train", data_dir=cache)[1].tolist() == [9, 0, 3]  # the real files win
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(b"broken")
    with pytest.raises(CorruptFileError):  # a damaged file is reported, not papered over with the sample
        fm.load_fashion_mnist("train", data_dir=cache)
    with pytest.raises(DatasetUnavailableError):  # CI mode, but the caller said no
        fm.load_fashion_mnist("test", data_dir=tiny_sample / "empty-cache", allow_sample=False)


def test_missing_data_shows_as_its_message_alone_in_ipython(tiny):
    with pytest.raises(DatasetUnavailableError) as error:
        fm.load_fashion_mnist("test", data_dir=tiny / "empty-cache")
    lines = error.value._render_traceback_()
    assert "DatasetUnavailableError: FashionMNIST file" in lines[0] and len(lines) == len(str(error.value).splitlines())
    assert not any("Traceback" in line or "fashion_mnist.py" in line for line in lines)


def test_the_shipped_sample_is_the_start_of_the_real_test_split():
    images, labels = fm.load_sample()
    assert images.shape == (fm.SAMPLE_SIZE, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() == -1 and images.max() == 1 and labels.dtype == torch.long
    counts = labels.bincount(minlength=10)
    assert len(counts) == 10 and counts.min() >= 150  # every class, close to balanced (188 to 219 each)
    assert (fm.SAMPLE_DIR / "README.md").read_text().count("MIT") >= 1  # origin and license ship beside it
    test_images = fm.debian_dir() / fm.FILES["test"][0].name
    if test_images.is_file():  # where the full files are present, the sample is exactly their first images
        full_images, full_labels = fm.load_fashion_mnist(
            "test", data_dir=fm.SAMPLE_DIR / "no-cache", download=False, allow_sample=False
        )
        assert torch.equal(full_images[: fm.SAMPLE_SIZE], images) and torch.equal(full_labels[: fm.SAMPLE_SIZE], labels)


def test_the_sample_is_declared_as_package_data():
    import tomllib

    pyproject = tomllib.loads((fm.REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["utils"]
    shipped = {
        p.relative_to(fm.REPO_ROOT / "utils") for pattern in patterns for p in (fm.REPO_ROOT / "utils").glob(pattern)
    }
    for name in ("README.md", *(spec.name for spec in fm.SAMPLE_FILES)):
        assert (fm.SAMPLE_DIR / name).relative_to(fm.REPO_ROOT / "utils") in shipped, name


# --------------------------------------------------------------------------------------------------------------------
# The download, served from memory by a urllib handler


class MemoryHandler(urllib.request.BaseHandler):
    """Answers http:// requests with the bytes in `files`, by file name; records each request."""

    handler_order = 100  # before urllib's own HTTPHandler, which would go to the network

    def __init__(self, files: dict[str, bytes], announced_extra: int = 0):
        self.files = files
        self.announced_extra = announced_extra  # > 0: Content-Length promises more bytes than are sent
        self.requests: list[tuple[str, float]] = []

    def http_open(self, request):
        self.requests.append((request.full_url, request.timeout))
        body = self.files[request.full_url.rsplit("/", 1)[-1]]
        headers = email.message.Message()
        headers["Content-Length"] = str(len(body) + self.announced_extra)
        response = urllib.response.addinfourl(io.BytesIO(body), headers, request.full_url, 200)
        response.msg = "OK"  # urllib's HTTPErrorProcessor reads it
        return response


class RecordingBar:
    """Stands in for tqdm: remembers its total and the updates it received."""

    bars: list["RecordingBar"] = []

    def __init__(self, total=None, **kwargs):
        self.total, self.updates, self.kwargs = total, [], kwargs
        RecordingBar.bars.append(self)

    def update(self, n):
        self.updates.append(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Files served from memory through urllib's global opener, and a recording progress bar."""

    def serve(files, announced_extra=0):
        handler = MemoryHandler(files, announced_extra)
        monkeypatch.setattr(urllib.request, "_opener", urllib.request.build_opener(handler))
        return handler

    RecordingBar.bars = []
    monkeypatch.setattr(fm, "tqdm", RecordingBar)
    return serve


def test_download_checks_md5_shows_progress_and_renames(served, tmp_path):
    content = TINY_CONTENT["train-labels-idx1-ubyte.gz"]
    handler = served({"train-labels-idx1-ubyte.gz": content})
    dest = tmp_path / "cache" / "train-labels-idx1-ubyte.gz"
    path = fm.download_file(fm.BASE_URL + dest.name, dest, hashlib.md5(content).hexdigest())
    assert path == dest and dest.read_bytes() == content
    assert list(dest.parent.iterdir()) == [dest]  # the temporary file was renamed, nothing left behind
    assert handler.requests == [(fm.BASE_URL + dest.name, fm.DOWNLOAD_TIMEOUT_S)]
    (bar,) = RecordingBar.bars
    assert bar.total == len(content) and sum(bar.updates) == len(content)


def test_download_with_wrong_md5_is_not_kept(served, tmp_path):
    served({"t10k-labels-idx1-ubyte.gz": b"not the original bytes"})
    dest = tmp_path / "cache" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(CorruptFileError, match="MD5"):
        fm.download_file(fm.BASE_URL + dest.name, dest, TINY_FILES["test"][1].md5)
    assert list(dest.parent.iterdir()) == []


def test_cut_short_download_is_not_kept(served, tmp_path):
    content = TINY_CONTENT["t10k-labels-idx1-ubyte.gz"]
    served({"t10k-labels-idx1-ubyte.gz": content}, announced_extra=100)
    dest = tmp_path / "cache" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(CorruptFileError, match="cut short"):
        fm.download_file(fm.BASE_URL + dest.name, dest, hashlib.md5(content).hexdigest())
    assert list(dest.parent.iterdir()) == []


def test_load_downloads_into_the_cache_once(served, monkeypatch, tmp_path):
    monkeypatch.setattr(fm, "FILES", TINY_FILES)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv(fm.DEBIAN_DIR_ENV, raising=False)
    handler = served(TINY_CONTENT)
    cache = tmp_path / "cache"
    images, labels = fm.load_fashion_mnist("test", data_dir=cache)
    assert labels.tolist() == [9, 0] and images.shape == (2, 1, 4, 4)
    assert sorted(p.name for p in cache.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert len(handler.requests) == 2
    fm.load_fashion_mnist("test", data_dir=cache)
    assert len(handler.requests) == 2  # the second load reads the cache


# --------------------------------------------------------------------------------------------------------------------
# The real files, where the Debian package `dataset-fashion-mnist` is installed (CI installs it)

real_files = pytest.mark.skipif(
    not all((fm.debian_dir() / spec.name).is_file() for pair in fm.FILES.values() for spec in pair),
    reason=f"the real FashionMNIST files are not in {fm.debian_dir()} (apt-get install dataset-fashion-mnist)",
)


@real_files
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_files(split, n, tmp_path):
    images, labels = fm.load_fashion_mnist(split, data_dir=tmp_path / "empty-cache", download=False, allow_sample=False)
    assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() == -1 and images.max() == 1
    assert labels.shape == (n,) and labels.dtype == torch.long
    assert labels.bincount().tolist() == [n // 10] * 10  # FashionMNIST is balanced: n / 10 images per class
