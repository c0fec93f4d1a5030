"""IDX datasets (Fashion-MNIST, MNIST): finding, verifying, downloading and decoding the files.

Small vision datasets fit in a few tens of MB, so they are decoded once into uint8 tensors;
batching indexes them (batching.py), and `views.to_float` turns a batch into floats.

Bounded: only regular files are read; an IDX header says how many bytes follow, so the
size is checked against `MAX_IDX_BYTES` before anything is decompressed and reading stops
there (a small gzip that would expand to gigabytes allocates only what its header claims,
and a header claiming gigabytes is refused at once). Verified: a local copy must match
the dataset's published checksums (`netspec.datasets`), once; the verdict is cached by
file identity in the user cache. Strict: `--data-dir` or `$NETSPEC_DATA` that do not hold
the files are an error, never a silent fallback to another copy.

Every failure a user can cause is a `DataError` with one line naming the file.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import math
import os
import zlib
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO
from urllib.request import urlopen

import numpy as np
import torch

from netspec import datasets
from netspec.errors import DataError, NetspecError
from netspec.files import atomic_write, open_regular
from netspec.runtime.data.splits import Splits

__all__ = [
    "MAX_IDX_BYTES",
    "SYSTEM_DIRS",
    "cache_dir",
    "download_dataset",
    "find_dataset",
    "load_dataset",
    "read_idx",
    "verify_md5",
]

# IDX type code (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 1 << 31  # 2 GiB of data per file (Fashion-MNIST's largest holds 47 MB)
_CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 60.0
_VERDICTS = "verified.json"

# System-wide read-only copies, looked at last; a dict so tests can blank it out.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    name: tuple(Path(p) for p in d.idx.system_dirs) for name, d in datasets.DATASETS.items() if d.idx is not None
}


# --------------------------------------------------------------------------- decoding
def _read_exact(stream: BinaryIO, n: int, into: bytearray | None = None, digest: "hashlib._Hash | None" = None) -> bytearray:
    """Read exactly `n` bytes (fewer only at the end of the data), chunk by chunk."""
    buf = into if into is not None else bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = stream.readinto(view[got : min(n, got + _CHUNK)])
        if not k:
            break
        got += k
    del view
    if got < n:
        del buf[got:]
    if digest is not None:
        digest.update(buf)
    return buf


def _decode_stream(path: Path, stream: BinaryIO, digest: "hashlib._Hash | None") -> torch.Tensor:
    head = _read_exact(stream, 4, digest=digest)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    magic = int.from_bytes(head, "big")
    zero, type_code, ndim = bytes(head[:2]), head[2], head[3]
    if zero != b"\0\0" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path}: bad IDX magic 0x{magic:08x} (expected 0x00000803 for images or 0x00000801 for labels)"
        )
    dims = _read_exact(stream, 4 * ndim, digest=digest)
    if len(dims) < 4 * ndim:
        raise DataError(f"{path}: IDX header cut short ({4 + len(dims)} bytes, need {4 + 4 * ndim})")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize
    if expected > MAX_IDX_BYTES:  # before a byte of the payload is decompressed
        raise DataError(
            f"{path}: header says shape {shape} ({expected:,} bytes of data), more than the limit of "
            f"{MAX_IDX_BYTES:,} bytes for one IDX file"
        )
    payload = _read_exact(stream, expected, digest=digest)
    if len(payload) < expected:
        raise DataError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds {len(payload)} bytes")
    if stream.read(1):  # decompresses at most one more chunk
        raise DataError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds more")
    array = np.frombuffer(payload, dtype=dtype, count=math.prod(shape))
    # astype copies into native byte order; the copy also makes the array writable.
    return torch.from_numpy(array.astype(dtype.newbyteorder("="))).reshape(shape)


def read_idx(path: str | os.PathLike[str], digest: "hashlib._Hash | None" = None) -> torch.Tensor:
    """Decode an IDX file (raw or gzip-compressed, told apart by content) into a tensor.

    The header is checked against the payload, so a truncated or padded download fails here
    with the file named. `digest`, if given, is updated with the decompressed bytes.
    """
    path = Path(path)
    try:
        raw = open_regular(path, MAX_IDX_BYTES)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    with raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic != _GZIP_MAGIC:
            if path.suffix == ".gz":
                raise DataError(f"{path}: not a gzip file (first bytes {raw.read(4).hex() or 'none'})")
            return _decode_stream(path, raw, digest)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _decode_stream(path, stream, digest)  # type: ignore[arg-type]
        except EOFError:
            raise DataError(f"{path}: gzip data is truncated (incomplete download?)") from None
        except (OSError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open_regular(path, MAX_IDX_BYTES) as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike[str], expected: str) -> None:
    """Raise `DataError` unless the file's MD5 is `expected`."""
    path = Path(path)
    try:
        actual = _file_md5(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read for MD5 check ({e.strerror or e})") from None
    if actual != expected.lower():
        raise DataError(f"{path}: MD5 is {actual}, expected {expected.lower()} (corrupt or incomplete)")


# --------------------------------------------------------------------------- finding
def _entry(name: str) -> tuple[datasets.Dataset, datasets.IdxFiles]:
    try:
        entry = datasets.get(name)
    except KeyError as exc:
        raise DataError(str(exc.args[0])) from None
    if entry.idx is None:
        known = ", ".join(sorted(n for n, d in datasets.DATASETS.items() if d.idx is not None))
        raise DataError(f"{entry.name} is not read from IDX files; known: {known}")
    return entry, entry.idx


def cache_dir(name: str) -> Path:
    """Per-user download folder: $XDG_CACHE_HOME/netspec/<name>, else ~/.cache/netspec/<name>."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "netspec" / _entry(name)[0].name


def _given_root(data_dir: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """The folder the user named (--data-dir first, else $NETSPEC_DATA), and how they named it."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), f"--data-dir {data_dir}"
    if os.environ.get("NETSPEC_DATA"):
        return Path(os.environ["NETSPEC_DATA"]).expanduser(), f"NETSPEC_DATA={os.environ['NETSPEC_DATA']}"
    return None


def _candidates(name: str, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders to look in: the one named (and its <name>/ sub-folders) alone, when the user
    named one; else the user cache, then system copies."""
    entry, idx = _entry(name)
    given = _given_root(data_dir)
    if given is not None:
        root = given[0]
        return [root, *(root / s for s in idx.subdirs)]
    return list(dict.fromkeys([cache_dir(entry.name), *SYSTEM_DIRS.get(entry.name, ())]))


def _files_in(idx: datasets.IdxFiles, folder: Path) -> dict[str, Path] | None:
    """The four files in `folder` (each .gz, or already gunzipped), or None if any is missing."""
    found: dict[str, Path] = {}
    for part, fname in idx.files.items():
        for p in (folder / fname, folder / fname.removesuffix(".gz")):
            if p.is_file():
                found[part] = p
                break
        else:
            return None
    return found


def find_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[dict[str, Path] | None, list[Path]]:
    """Look for a local copy; return (files or None, every folder looked in)."""
    _, idx = _entry(name)
    looked = _candidates(name, data_dir)
    for folder in looked:
        files = _files_in(idx, folder)
        if files is not None:
            return files, looked
    return None, looked


def check_given_folder(data_dir: str | os.PathLike[str] | None) -> None:
    """--data-dir / $NETSPEC_DATA must name an existing, non-empty folder (a typo must not
    quietly read another copy, or download one)."""
    given = _given_root(data_dir)
    if given is None:
        return
    root, how = given
    if not root.exists():
        raise DataError(f"{how}: no such folder")
    if not root.is_dir():
        raise DataError(f"{how}: is not a folder")
    try:
        empty = not any(os.scandir(root))
    except OSError as e:
        raise DataError(f"{how}: cannot read the folder ({e.strerror or e})") from None
    if empty:
        raise DataError(f"{how}: the folder is empty")


def download_dataset(name: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Fetch the files missing from `dest` (default: the user cache), checking published MD5s.

    Each file is written through `atomic_write` and the MD5 is checked before the rename, so
    an interrupted or corrupt download never looks like a dataset.
    """
    entry, idx = _entry(name)
    dest = Path(dest) if dest is not None else cache_dir(entry.name)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create download folder {dest} ({e.strerror or e})") from None
    for fname in idx.files.values():
        target = dest / fname
        if target.is_file():
            continue
        url = idx.mirror + fname

        def fetch(out: BinaryIO, url: str = url, fname: str = fname) -> None:
            digest = hashlib.md5()
            with urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != idx.md5[fname]:
                raise DataError(f"downloaded {url} has MD5 {digest.hexdigest()}, expected {idx.md5[fname]}")

        try:
            atomic_write(target, fetch)
        except (OSError, HTTPException, ValueError) as e:
            raise DataError(f"downloading {url} failed ({e})") from None
    return dest


def _locate(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> dict[str, Path]:
    entry, idx = _entry(name)
    check_given_folder(data_dir)
    files, looked = find_dataset(entry.name, data_dir)
    if files is not None:
        return files
    missing = (
        f"{entry.name}: need {', '.join(idx.files.values())} together in one folder, but none of "
        f"these has them: {', '.join(map(str, looked))}"
    )
    given = _given_root(data_dir)
    if given is not None:  # the user said where: no other copy, no download
        raise DataError(f"{given[1]}: {missing}; put the files there (netspec looks nowhere else when a folder is named)")
    hint = "put the files in one of those folders or set NETSPEC_DATA to their folder"
    if not download:
        raise DataError(f"{missing}; downloading is off; {hint}")
    try:
        dest = download_dataset(entry.name)
    except DataError as e:
        raise DataError(f"{missing}; {e}; {hint}") from None
    found = _files_in(idx, dest)
    assert found is not None, "download_dataset leaves all four files"
    return found


# --------------------------------------------------------------------------- verifying
def _identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def _verdicts(name: str) -> dict[str, str]:
    try:
        with open_regular(cache_dir(name) / _VERDICTS, 1 << 20) as f:
            data = json.loads(f.read())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(name: str, verified: dict[str, str]) -> None:
    """Cache positive verdicts; an unwritable cache only costs hashing again next time."""
    folder = cache_dir(name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / _VERDICTS, json.dumps({**_verdicts(name), **verified}, indent=1).encode())
    except (OSError, NetspecError):  # NetspecError: a link in the cache's place, refused
        pass


def _decoder(entry: datasets.Dataset, idx: datasets.IdxFiles, path: Path, fname: str, cached: bool) -> Callable[[], torch.Tensor]:
    """Read one file, checking it against the published checksums unless already verified."""

    def read() -> torch.Tensor:
        if cached:
            return read_idx(path)
        if idx.sha256.get(fname):
            digest = hashlib.sha256()
            tensor = read_idx(path, digest)
            if digest.hexdigest() != idx.sha256[fname]:
                raise DataError(
                    f"{path}: its data do not match the published {entry.name} {fname} (SHA-256 of the decompressed "
                    f"bytes {digest.hexdigest()[:16]}…, expected {idx.sha256[fname][:16]}…); corrupt, or another dataset"
                )
            return tensor
        if path.name == fname:  # a .gz: the published MD5 applies
            verify_md5(path, idx.md5[fname])
            return read_idx(path)
        raise DataError(f"{path}: cannot verify a decompressed {entry.name} file (only the .gz MD5s are published); use {fname}")

    return read


@functools.lru_cache(maxsize=4)
def _decode(name: str, key: tuple[tuple[str, str, str, int, int], ...]) -> tuple[torch.Tensor, ...]:
    """Decode (and verify) the four IDX files once per process; the key holds each file's
    mtime and size, so a replaced file is read again."""
    entry, idx = _entry(name)
    known = _verdicts(name)
    t, paths, verified = {}, {}, {}
    for part, path_text, fname, _, _ in key:
        path = Path(path_text)
        identity = _identity(path)
        t[part] = _decoder(entry, idx, path, fname, known.get(identity) == "ok")()
        paths[part] = path
        verified[identity] = "ok"
    num_classes = len(entry.classes or ())
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
    if any(v != known.get(k) for k, v in verified.items()):
        _remember(name, verified)
    return (t["train_x"].unsqueeze(1), t["train_y"].long(), t["test_x"].unsqueeze(1), t["test_y"].long())


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Splits:
    """Load an IDX dataset (fashion_mnist, mnist) from a local copy, or by download.

    With `data_dir` (or $NETSPEC_DATA) the files must be in that folder or its <name>/
    sub-folder; otherwise the user cache and system copies are looked in, and the network is
    used only when there is no copy (downloads go to the user cache). Local copies are
    verified against the published checksums once (the verdict is cached).
    """
    entry, idx = _entry(name)
    files = _locate(entry.name, data_dir, download)
    key = []
    for part, path in files.items():
        resolved = path.resolve()
        st = resolved.stat()
        key.append((part, str(resolved), idx.files[part], st.st_mtime_ns, st.st_size))
    train_x, train_y, test_x, test_y = _decode(entry.name, tuple(key))
    return Splits(entry.name, "classification", train_x, train_y, test_x, test_y, entry.classes or ())
