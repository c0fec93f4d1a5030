"""The dataset table: schema, JSON Schema, checks, loaders and docs all follow it, so a
dataset added to it (at any position) is everywhere at once."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from netspec import datasets
from netspec.compiler.train_schema import TrainConfig

from shared_data import FASHION_MNIST, needs_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]


def dataset_schema() -> dict:
    return TrainConfig.model_json_schema()["properties"]["dataset"]


def shorthand_enum() -> list[str]:
    return next(s["enum"] for s in dataset_schema()["anyOf"] if s.get("type") == "string")


def test_every_dataset_is_in_the_schema_and_only_those_needing_no_fields_have_a_shorthand():
    assert set(datasets.DATASETS) == set(TrainConfig.model_json_schema()["$defs"]["DatasetSpec"]["properties"]["name"]["enum"])
    assert shorthand_enum() == [n for n, d in datasets.DATASETS.items() if not d.required]
    for name, d in datasets.DATASETS.items():
        if d.required:
            with pytest.raises(ValidationError, match=" and ".join(f"'{f}'" for f in d.required)):
                TrainConfig.model_validate({"dataset": name})
        else:
            assert TrainConfig.model_validate({"dataset": name}).dataset.name == name


def test_a_dataset_inserted_anywhere_keeps_every_shorthand(monkeypatch):
    """The old enum was built by position (DATASETS[:2] + DATASETS[3:]): an insertion dropped
    one and let csv in. The schema's enum is `shorthand_names()` (test above); this is its rule."""
    extra = dataclasses.replace(datasets.DATASETS["mnist"], name="kmnist", doc="Kuzushiji-MNIST")
    table = dict(datasets.DATASETS)
    monkeypatch.setattr(datasets, "DATASETS", {"fashion_mnist": table.pop("fashion_mnist"), "kmnist": extra, **table})
    assert datasets.shorthand_names() == ("fashion_mnist", "kmnist", "fashion_mnist_segmentation", "mnist", "synthetic_regression", "sine_wave")
    assert "kmnist" in datasets.markdown_table()


def test_the_committed_json_schema_offers_the_tables_shorthands():
    committed = json.loads((ROOT / "docs" / "netspec.schema.json").read_text())
    text = json.dumps(committed)
    for name in datasets.shorthand_names():
        assert f'"{name}"' in text


def test_docs_table_is_the_registry():
    assert datasets.markdown_table() in (ROOT / "docs" / "training.md").read_text()


def test_the_static_table_and_the_train_schema_import_without_torch():
    code = "import sys, netspec.datasets, netspec.compiler.train_schema; sys.exit('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_every_loader_named_in_the_table_exists_and_takes_the_common_signature():
    import inspect

    for d in datasets.DATASETS.values():
        params = inspect.signature(d.load_function()).parameters
        assert {"seed", "data_dir", "spec_dir", "download"} <= set(params), d.name


def test_loaders_return_what_the_table_says(tmp_path):
    """The entry's task, example shape and classes are what its loader produces."""
    from netspec.runtime.train.prepare import prepare_data

    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    configs = {
        "synthetic_regression": {"dataset": {"name": "synthetic_regression", "examples": 10}, "loss": "mse"},
        "csv": {"dataset": {"name": "csv", "path": str(tmp_path / "d.csv"), "target": "y"}},
    }
    if all((FASHION_MNIST / f).is_file() for f in datasets.DATASETS["fashion_mnist"].idx.files.values()):
        configs["fashion_mnist"] = {"dataset": "fashion_mnist", "test_limit": 10}
    for name, raw in configs.items():
        entry = datasets.DATASETS[name]
        data = prepare_data(TrainConfig.model_validate(raw), FASHION_MNIST if entry.local_files else None)
        assert data.name == name or entry.task == "task"
        expected_task = raw["dataset"].get("task", "classification") if entry.task == "task" else entry.task
        assert data.task == expected_task
        if entry.example_shape is not None:
            assert tuple(data.train_x.shape[1:]) == entry.example_shape
        if entry.classes is not None:
            assert data.classes == entry.classes


@needs_fashion_mnist
def test_fashion_mnist_entry_matches_the_shared_copys_published_sums():
    sums = dict(reversed(line.split()) for line in (FASHION_MNIST / "MD5SUMS").read_text().splitlines() if line.strip())
    assert sums == datasets.DATASETS["fashion_mnist"].idx.md5
