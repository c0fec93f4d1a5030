"""Datasets for training runs, held in memory as tensors, one module per job:

- `netspec.datasets` (no torch): the table of datasets the schema, checks, loaders and docs derive from;
- `loaders`: the functions that table names; `idx` (Fashion-MNIST, MNIST files: find,
  verify, download, decode, bounded), `tabular` (CSV), `synthetic` (generated data);
- `splits`: the tensors a loader returns; `views`: stored examples -> model input (x/255, resize).

Batching and index splits live in ../batching.py, augmentation in ../augment.py.
"""
from __future__ import annotations

from netspec.datasets import DATASETS
from netspec.runtime.data.idx import (
    MAX_IDX_BYTES,
    SYSTEM_DIRS,
    cache_dir,
    check_given_folder,
    download_dataset,
    find_dataset,
    load_dataset,
    read_idx,
    verify_md5,
)
from netspec.runtime.data.splits import Splits
from netspec.runtime.data.synthetic import synthetic_regression
from netspec.runtime.data.tabular import MAX_CSV_BYTES, load_csv
from netspec.runtime.data.views import resize, to_float

__all__ = [
    "DATASETS",
    "MAX_CSV_BYTES",
    "MAX_IDX_BYTES",
    "SYSTEM_DIRS",
    "Splits",
    "cache_dir",
    "check_given_folder",
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
