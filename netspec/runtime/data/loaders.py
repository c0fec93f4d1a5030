"""The loaders `netspec.datasets` names: one function per kind of source, one signature.

Each takes the spec's `train.dataset` entry and returns `Splits`; the table says which
dataset uses which, so nothing here decides by name.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from netspec.runtime.data.idx import load_dataset
from netspec.runtime.data.splits import Splits
from netspec.runtime.data.synthetic import sine_wave, synthetic_regression
from netspec.runtime.data.tabular import load_csv

__all__ = ["load_csv_dataset", "load_idx", "load_sine_wave", "load_synthetic"]


def load_idx(ds: Any, *, seed: int, data_dir: str | os.PathLike[str] | None, spec_dir: Path | None, download: bool = True) -> Splits:
    return load_dataset(ds.name, data_dir, download=download)


def load_csv_dataset(ds: Any, *, seed: int, data_dir: str | os.PathLike[str] | None, spec_dir: Path | None, download: bool = True) -> Splits:
    """A relative `path` is read beside the spec when it is not found from the working folder."""
    path = Path(ds.path or "")
    if not path.is_absolute() and spec_dir is not None and not path.exists():
        path = spec_dir / path
    return load_csv(path, ds.target or "", task=ds.task, seed=seed)


def load_synthetic(ds: Any, *, seed: int, data_dir: str | os.PathLike[str] | None, spec_dir: Path | None, download: bool = True) -> Splits:
    return synthetic_regression(ds.true_w, ds.true_b, n=ds.examples, noise=ds.noise, seed=seed)


def load_sine_wave(ds: Any, *, seed: int, data_dir: str | os.PathLike[str] | None, spec_dir: Path | None, download: bool = True) -> Splits:
    return sine_wave(T=ds.T, tau=ds.tau, noise=ds.noise, n_train=ds.n_train, seed=seed)
