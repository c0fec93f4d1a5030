"""Where the tests find the real Fashion-MNIST files (../shared/data beside the repository),
the mark that skips a test, with its reason, on a clone without them, and `trust_copy`:
make a test's small fake dataset pass netspec's checksum verification."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import pytest

from netspec import datasets

FASHION_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"
FILES = list(datasets.DATASETS["fashion_mnist"].idx.files.values())
needs_fashion_mnist = pytest.mark.skipif(
    not all((FASHION_MNIST / f).is_file() for f in FILES),
    reason=f"real Fashion-MNIST files not present in {FASHION_MNIST} (../shared/data beside the repository)",
)


def trust_copy(monkeypatch: pytest.MonkeyPatch, folder: Path, name: str = "fashion_mnist") -> None:
    """Replace the dataset's published checksums, for this test, by those of the fake files in
    `folder` (each .gz or raw), so loading them still goes through verification."""
    entry = datasets.DATASETS[name]
    sums = {}
    for fname in entry.idx.files.values():
        gz, raw = folder / fname, folder / fname.removesuffix(".gz")
        data = gzip.decompress(gz.read_bytes()) if gz.is_file() else raw.read_bytes()
        sums[fname] = hashlib.sha256(data).hexdigest()
    idx = dataclasses.replace(entry.idx, sha256=sums)
    monkeypatch.setitem(datasets.DATASETS, name, dataclasses.replace(entry, idx=idx))
