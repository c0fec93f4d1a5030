"""Datasets for training runs, held in memory as tensors.

Small vision datasets (Fashion-MNIST, MNIST) fit in a few tens of MB, so they are decoded
once into uint8 tensors and batched by indexing with a `torch.randperm` permutation: no
per-sample Python, no DataLoader workers, and the whole set can live on the GPU. Images
stay uint8 (4x smaller) and are turned into floats per batch with `to_float` (x/255, the
textbook's `ToTensor`; no mean/std normalisation is applied).
Batching, sharding and index splits live in batching.py.

Every failure a user can cause (missing or corrupt files, bad CSV) is a `DataError` with
one line naming the file and what is wrong.
"""
from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import math
import os
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from urllib.request import urlopen

import numpy as np
import torch
import torch.nn.functional as F

from netspec.errors import DataError

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST",
    "DatasetInfo",
    "SYSTEM_DIRS",
    "Splits",
    "cache_dir",
    "download_dataset",
    "find_dataset",
    "load_csv",
    "load_dataset",
    "read_idx",
    "resize",
    "synthetic_regression",
    "to_float",
    "verify_md5",
]

# --------------------------------------------------------------------------- IDX files

# IDX type code (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Decode an IDX file (raw or gzip-compressed, told apart by content) into a tensor.

    The header is checked against the payload so a truncated or padded download fails here,
    with the file named, instead of as a reshape error deep in training.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except EOFError:
            raise DataError(f"{path}: gzip data is truncated (incomplete download?)") from None
        except (OSError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    elif path.suffix == ".gz":
        raise DataError(f"{path}: not a gzip file (first bytes {data[:4].hex() or 'none'})")

    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    zero, type_code, ndim = data[:2], data[2], data[3]
    if zero != b"\0\0" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path}: bad IDX magic 0x{magic:08x} (expected 0x00000803 for images "
            f"or 0x00000801 for labels)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header cut short ({len(data)} bytes, need {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file "
            f"holds {len(data) - header} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    # astype copies into native byte order; the copy also makes the array writable.
    return torch.from_numpy(array.astype(dtype.newbyteorder("="))).reshape(shape)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike[str], expected: str) -> None:
    """Raise `DataError` unless the file's MD5 is `expected` (used for our own downloads)."""
    path = Path(path)
    try:
        actual = _md5(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read for MD5 check ({e.strerror or e})") from None
    if actual != expected.lower():
        raise DataError(f"{path}: MD5 is {actual}, expected {expected.lower()} (corrupt or incomplete)")


# --------------------------------------------------------------------------- datasets

@dataclass(frozen=True)
class DatasetInfo:
    """What is needed to find, fetch and label one IDX dataset."""

    name: str
    files: dict[str, str]  # split part (train_x, ...) -> file name
    md5: dict[str, str]  # file name -> published MD5 of the .gz
    mirror: str
    classes: tuple[str, ...]
    subdirs: tuple[str, ...]  # sub-folder names also accepted under a given dir


_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}

DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        files=_IDX_FILES,
        md5={  # published by Zalando Research
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        classes=("t-shirt", "trouser", "pullover", "dress", "coat",
                 "sandal", "shirt", "sneaker", "bag", "ankle boot"),
        subdirs=("fashion_mnist", "fashion-mnist"),
    ),
    "mnist": DatasetInfo(
        name="mnist",
        files=_IDX_FILES,
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",
        classes=tuple(str(d) for d in range(10)),
        subdirs=("mnist",),
    ),
}

# Debian's dataset-fashion-mnist package installs the files here.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# System-wide read-only copies, looked at last; a dict so tests can blank it out.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {"fashion_mnist": (DEBIAN_FASHION_MNIST,)}

DOWNLOAD_TIMEOUT_S = 60.0


def _info(name: str) -> DatasetInfo:
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[key]


def cache_dir(name: str) -> Path:
    """Per-user download folder: $XDG_CACHE_HOME/netspec/<name>, else ~/.cache/netspec/<name>."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "netspec" / _info(name).name


def _candidates(info: DatasetInfo, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders to look in, in order: data_dir, $NETSPEC_DATA, user cache, system copies."""
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get("NETSPEC_DATA"):
        roots.append(Path(os.environ["NETSPEC_DATA"]).expanduser())
    dirs = [d for root in roots for d in (root, *(root / s for s in info.subdirs))]
    dirs += [cache_dir(info.name), *SYSTEM_DIRS.get(info.name, ())]
    return list(dict.fromkeys(dirs))  # de-duplicate, keep order


def _files_in(info: DatasetInfo, folder: Path) -> dict[str, Path] | None:
    """The four files in `folder` (each .gz, or already gunzipped), or None if any is missing."""
    found: dict[str, Path] = {}
    for part, fname in info.files.items():
        for p in (folder / fname, folder / fname.removesuffix(".gz")):
            if p.is_file():
                found[part] = p
                break
        else:
            return None
    return found


def find_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Path] | None, list[Path]]:
    """Look for a local copy; return (files or None, every folder looked in)."""
    info = _info(name)
    looked = _candidates(info, data_dir)
    for folder in looked:
        files = _files_in(info, folder)
        if files is not None:
            return files, looked
    return None, looked


def download_dataset(name: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Fetch the files missing from `dest` (default: the user cache), checking published MD5s.

    Each file goes to a temporary name in `dest` and is renamed only after its MD5 matches,
    so an interrupted or corrupt download never looks like a dataset (and concurrent
    processes can race safely).
    """
    info = _info(name)
    dest = Path(dest) if dest is not None else cache_dir(info.name)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create download folder {dest} ({e.strerror or e})") from None
    for fname in info.files.values():
        target = dest / fname
        if target.is_file():
            continue
        url = info.mirror + fname
        fd, tmp_name = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
            actual = _md5(tmp)
            if actual != info.md5[fname]:
                raise DataError(f"downloaded {url} has MD5 {actual}, expected {info.md5[fname]}")
            os.replace(tmp, target)
        except (OSError, HTTPException, ValueError) as e:
            raise DataError(f"downloading {url} failed ({e})") from None
        finally:
            tmp.unlink(missing_ok=True)
    return dest


def _locate(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> dict[str, Path]:
    info = _info(name)
    files, looked = find_dataset(info.name, data_dir)
    if files is not None:
        return files
    missing = (
        f"{info.name}: need {', '.join(info.files.values())} together in one folder, but none of "
        f"these has them: {', '.join(map(str, looked))}"
    )
    hint = "put the files in one of those folders or set NETSPEC_DATA to their folder"
    if not download:
        raise DataError(f"{missing}; downloading is off; {hint}")
    try:
        dest = download_dataset(info.name)
    except DataError as e:
        raise DataError(f"{missing}; {e}; {hint}") from None
    files = _files_in(info, dest)
    assert files is not None, "download_dataset leaves all four files"
    return files


@functools.lru_cache(maxsize=4)
def _decode(
    key: tuple[tuple[str, str, int, int], ...], num_classes: int
) -> tuple[torch.Tensor, ...]:
    """Decode the four IDX files once per process (key includes mtime and size, so a
    replaced file is re-read)."""
    t = {part: read_idx(path) for part, path, _, _ in key}
    paths = {part: path for part, path, _, _ in key}
    for split in ("train", "test"):
        x, y = t[f"{split}_x"], t[f"{split}_y"]
        if x.dim() != 3 or x.dtype != torch.uint8:
            raise DataError(f"{paths[f'{split}_x']}: expected uint8 images N×H×W, got {x.dtype} {tuple(x.shape)}")
        if y.dim() != 1 or y.dtype != torch.uint8:
            raise DataError(f"{paths[f'{split}_y']}: expected uint8 labels N, got {y.dtype} {tuple(y.shape)}")
        if len(x) != len(y):
            raise DataError(f"{paths[f'{split}_y']}: {len(y)} labels for {len(x)} images in {paths[f'{split}_x']}")
        if len(y) and int(y.max()) >= num_classes:
            raise DataError(f"{paths[f'{split}_y']}: label {int(y.max())} out of range 0..{num_classes - 1}")
    return (t["train_x"].unsqueeze(1), t["train_y"].long(), t["test_x"].unsqueeze(1), t["test_y"].long())


@dataclass(frozen=True, eq=False)
class Splits:
    """A dataset in memory: train and test tensors plus what the model needs to know.

    Images are uint8 N×C×H×W (convert per batch with `to_float`), class labels int64 N,
    regression targets float32 N×1. Tensors may be shared between loads of the same
    files in one process: treat them as read-only (indexing a batch copies anyway).
    """

    name: str
    task: str  # "classification" | "regression"
    train_x: torch.Tensor = field(repr=False)
    train_y: torch.Tensor = field(repr=False)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    classes: tuple[str, ...] = field(default=(), repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch dimension."""
        return tuple(self.train_x.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Splits({self.name!r}, {self.task}, train={tuple(self.train_x.shape)}, "
            f"test={tuple(self.test_x.shape)}, classes={self.num_classes})"
        )


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> Splits:
    """Load fashion_mnist or mnist, from a local copy if there is one, else by download.

    Local copies are looked for in `data_dir` (or its <name>/ sub-folder), $NETSPEC_DATA,
    the user cache and system packages; they are validated by IDX parsing, not by MD5
    (Debian re-compresses its copy). The network is used only when no copy exists, and
    downloads always go to the user cache (see `cache_dir`), never into `data_dir`.
    """
    info = _info(name)
    files = _locate(info.name, data_dir, download)
    key = []
    for part, path in files.items():
        resolved = path.resolve()
        st = resolved.stat()
        key.append((part, str(resolved), st.st_mtime_ns, st.st_size))
    train_x, train_y, test_x, test_y = _decode(tuple(key), len(info.classes))
    return Splits(info.name, "classification", train_x, train_y, test_x, test_y, info.classes)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] (x/255, like torchvision's ToTensor); floats pass through."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x if x.is_floating_point() else x.to(torch.float32)


# --------------------------------------------------------------------------- other sources

def synthetic_regression(
    w: Sequence[float] | torch.Tensor,
    b: float,
    n: int = 1000,
    noise: float = 0.01,
    seed: int = 0,
    n_test: int | None = None,
) -> Splits:
    """Linear data as in Dive into Deep Learning: X ~ N(0, 1), y = Xw + b + N(0, noise²).

    `n` training and `n_test` (default `n`) test examples; targets are float32 N×1.
    """
    w = torch.as_tensor(w, dtype=torch.float32).reshape(-1, 1)
    n_test = n if n_test is None else n_test
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + n_test, len(w), generator=g)
    y = x @ w + b + noise * torch.randn(n + n_test, 1, generator=g)
    return Splits("synthetic_regression", "regression", x[:n], y[:n], x[n:], y[n:])


def _split_rows(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = round(n * test_fraction)
    return perm[n_test:], perm[:n_test]


def load_csv(
    path: str | os.PathLike[str],
    target: str,
    task: str = "regression",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Splits:
    """Read a CSV with a header row: numeric feature columns plus the `target` column.

    For `task="classification"` the target may be any text (or integers); classes are its
    distinct values, sorted numerically when they are all numbers, and labels index them.
    Rows are split into train/test by a seeded permutation.
    """
    path = Path(path)
    if task not in ("regression", "classification"):
        raise DataError(f"{path}: task must be 'regression' or 'classification', not {task!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"{path}: test_fraction must be in [0, 1), got {test_fraction}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV ({e})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]  # ignore blank lines
    if not rows:
        raise DataError(f"{path}: empty file (expected a header row)")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise DataError(f"{path}: no column {target!r}; columns are {', '.join(header)}")
    t_col = header.index(target)
    features: list[list[float]] = []
    targets: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: row {line} has {len(row)} fields, header has {len(header)}")
        values = []
        for col, cell in enumerate(row):
            if col == t_col:
                targets.append(cell.strip())
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise DataError(f"{path}: row {line}, column {header[col]!r}: {cell!r} is not a number") from None
        features.append(values)
    if not features:
        raise DataError(f"{path}: no data rows after the header")
    x = torch.tensor(features, dtype=torch.float32).reshape(len(features), len(header) - 1)

    classes: tuple[str, ...] = ()
    if task == "regression":
        try:
            y = torch.tensor([float(v) for v in targets], dtype=torch.float32).unsqueeze(1)
        except ValueError:
            line = next(i for i, v in enumerate(targets, start=2) if not _is_number(v))
            raise DataError(f"{path}: row {line}, column {target!r}: {targets[line - 2]!r} is not a number") from None
    else:
        distinct = set(targets)
        numeric = all(_is_number(v) for v in distinct)
        classes = tuple(sorted(distinct, key=float if numeric else str))
        index = {c: i for i, c in enumerate(classes)}
        y = torch.tensor([index[v] for v in targets], dtype=torch.int64)

    train, test = _split_rows(len(x), test_fraction, seed)
    if len(train) == 0:
        raise DataError(f"{path}: {len(x)} rows leave no training data with test_fraction={test_fraction}")
    return Splits(path.stem, task, x[train], y[train], x[test], y[test], classes)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a float N×C×H×W batch on its device (e.g. 28→224 for AlexNet).

    antialias=False matches what upsampling does anyway and is fast on every backend.
    """
    if not x.is_floating_point():
        raise TypeError(f"resize needs float images (use to_float first), got {x.dtype}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
