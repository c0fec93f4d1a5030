"""The dataset table: one entry per dataset, like the op registry.

From it derive the `train.dataset` schema (names, what each needs), the JSON Schema's
shorthand enum, the pre-launch checks (`--data-dir` matters only to datasets read from local
files), the loaders (named here, imported only when data is loaded: they need torch) and
the docs table. This module is plain data: `netspec check` imports it, never torch.
Adding a dataset = one `Dataset(...)` here and its loader function.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["DATASETS", "MAX_SERIES_VALUES", "Dataset", "IdxFiles", "View", "get", "markdown_table", "names", "shorthand_names"]

MAX_SERIES_VALUES = 100_000_000  # sine_wave: (T - tau)·tau float32 values (400 MB) at most, refused before generating


@dataclass(frozen=True)
class IdxFiles:
    """Where the four IDX files of a dataset come from and what they must hash to.

    `md5` is the published MD5 of each `.gz` (what the upstream site lists); `sha256` is the
    SHA-256 of the decompressed bytes, which survives re-compression (Debian's package
    rewrites the gzip headers, so its `.gz` files hash differently though the data are the
    same). Either verifies a local copy; downloads are checked against `md5`.
    """

    files: dict[str, str]  # split part (train_x, ...) -> file name
    md5: dict[str, str]  # file name -> MD5 of the .gz file
    sha256: dict[str, str]  # file name -> SHA-256 of its decompressed contents ({} if not known)
    mirror: str
    subdirs: tuple[str, ...]  # sub-folder names also accepted under a given folder
    system_dirs: tuple[str, ...] = ()  # read-only system copies, looked at last


@dataclass(frozen=True)
class View:
    """One `input:` a stored example can feed, and how its values are laid out there.

    A name in `shape` (H, F, tau) is a size the spec or the dataset's fields choose. The
    runtime needs no code per view: images are resized to the input's H×W when the input
    is C×H×W, otherwise an example's values are laid out in the input's shape in storage
    order (`netspec.runtime.train.prepare`), which is what makes each of these work.
    """

    shape: tuple[int | str, ...]
    what: str

    def markdown(self) -> str:
        return f"`[{', '.join(map(str, self.shape))}]` {self.what}"


@dataclass(frozen=True)
class Dataset:
    """One dataset: what it is, what a spec must give for it, and who loads it.

    `defaults` are this dataset's own values for shared fields it reads (the schema's are
    another dataset's); `check` (plain Python, no torch) refuses field values that cannot
    make this dataset, with a ValueError that the schema reports at `train.dataset`.
    """

    name: str
    doc: str
    loader: str  # "module:function", called as function(ds, seed=, data_dir=, spec_dir=, download=) -> Splits
    task: str  # "classification", "regression", "segmentation", or "task" (the spec's `task:` field says)
    example_shape: tuple[int, ...] | None = None  # one example's shape as stored; None: from the data
    classes: tuple[str, ...] | None = None  # None: regression, or read from the data
    required: tuple[str, ...] = ()  # fields of `train.dataset` this one must have
    fields: tuple[str, ...] = ()  # fields of `train.dataset` this one reads
    idx: IdxFiles | None = field(default=None, repr=False)  # read from local IDX files (then --data-dir applies)
    views: tuple[View, ...] = ()  # the inputs an example feeds (documented, and tested against prepare)
    defaults: dict[str, Any] = field(default_factory=dict)  # field -> this dataset's default for it
    check: Callable[[Any], None] | None = field(default=None, repr=False)  # the `train.dataset` entry -> None or ValueError

    @property
    def needs_path(self) -> bool:
        return "path" in self.required

    @property
    def local_files(self) -> bool:
        return self.idx is not None

    def load_function(self) -> Callable[..., Any]:
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)


_IDX_NAMES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}

_LOADERS = "netspec.runtime.data.loaders"
_FASHION_MNIST_FILES = IdxFiles(
    files=_IDX_NAMES,
    md5={  # published by Zalando Research
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    sha256={  # of the decompressed bytes of the files with the published MD5s
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    subdirs=("fashion_mnist", "fashion-mnist"),
    system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
)


_IMAGE_VIEWS = (
    View((1, "H", "W"), "the image, resized to the input's H×W"),
    View((784,), "the image flattened row by row"),
    View((28, 28), "row sequence: 28 steps, step t is the image's row t of 28 pixels"),
)


def _check_sine_wave(ds: Any) -> None:
    """T steps give T - tau examples of tau lagged values; train takes the first n_train."""
    if ds.tau >= ds.T:
        raise ValueError(f"sine_wave: tau ({ds.tau}) must be less than T ({ds.T}): each example is the tau values before one step of the series")
    examples = ds.T - ds.tau
    if ds.n_train >= examples:
        raise ValueError(
            f"sine_wave: n_train ({ds.n_train}) must be less than T - tau ({examples} examples) so that the test split is not empty"
        )
    if examples * ds.tau > MAX_SERIES_VALUES:
        raise ValueError(f"sine_wave: (T - tau)·tau is {examples * ds.tau:,} values; at most {MAX_SERIES_VALUES:,}")


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="fashion_mnist",
            doc="Zalando's 28×28 grey clothing images, 60,000 train + 10,000 test",
            loader=f"{_LOADERS}:load_idx",
            task="classification",
            example_shape=(1, 28, 28),
            classes=("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
            idx=_FASHION_MNIST_FILES,
            views=_IMAGE_VIEWS,
        ),
        Dataset(
            name="fashion_mnist_segmentation",
            doc="Fashion-MNIST as per-pixel masks: each pixel above 32/255 is its image's class + 1, the rest background (0)",
            loader="netspec.runtime.data.segmentation:load_split",
            task="segmentation",
            example_shape=(1, 28, 28),
            classes=("background", "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
            idx=_FASHION_MNIST_FILES,
        ),
        Dataset(
            name="mnist",
            doc="LeCun's 28×28 grey handwritten digits, 60,000 train + 10,000 test",
            loader=f"{_LOADERS}:load_idx",
            task="classification",
            example_shape=(1, 28, 28),
            classes=tuple(str(d) for d in range(10)),
            idx=IdxFiles(
                files=_IDX_NAMES,
                md5={
                    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
                },
                sha256={},
                mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",
                subdirs=("mnist",),
            ),
            views=_IMAGE_VIEWS,
        ),
        Dataset(
            name="csv",
            doc="a CSV file with a header row: numeric feature columns and a target column",
            loader=f"{_LOADERS}:load_csv_dataset",
            task="task",
            required=("path", "target"),
            fields=("path", "target", "task"),
            views=(View(("F",), "the F feature columns, in file order"),),
        ),
        Dataset(
            name="synthetic_regression",
            doc="linear data as in Dive into Deep Learning: X ~ N(0, 1), y = Xw + b + noise",
            loader=f"{_LOADERS}:load_synthetic",
            task="regression",
            fields=("true_w", "true_b", "examples", "noise"),
            views=(View(("F",), "the F = len(true_w) features"),),
        ),
        Dataset(
            name="sine_wave",
            doc="Dive into Deep Learning 9.1's series x_t = sin(0.01·t) + N(0, noise²), t = 1..T (seeded by `train.seed`); "
            "example t is x_t after its tau predecessors; the first n_train examples train, the rest test",
            loader=f"{_LOADERS}:load_sine_wave",
            task="regression",
            fields=("T", "tau", "noise", "n_train"),
            views=(
                View(("tau",), "lagged features x[t-tau] … x[t-1], for an MLP"),
                View(("tau", 1), "the same values as a sequence of tau steps of one feature, for an RNN"),
            ),
            defaults={"T": 1000, "tau": 4, "noise": 0.2, "n_train": 600},  # the book's
            check=_check_sine_wave,
        ),
    )
}


def names() -> tuple[str, ...]:
    return tuple(DATASETS)


def shorthand_names() -> tuple[str, ...]:
    """Datasets that may be named alone (`dataset: mnist`): those that need no fields."""
    return tuple(name for name, d in DATASETS.items() if not d.required)


def get(name: str) -> Dataset:
    """The entry for `name` (case and `-`/`_` forgiven); KeyError lists the known ones."""
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[key]


def markdown_table() -> str:
    """The docs' table of datasets (docs/training.md holds it; a test keeps the two equal)."""
    lines = ["| dataset | what | task | example | fields | inputs |", "|---|---|---|---|---|---|"]
    for d in DATASETS.values():
        task = "`task:` (classification or regression)" if d.task == "task" else d.task
        if d.classes:
            task += f", {len(d.classes)} classes"
        shape = "×".join(map(str, d.example_shape)) if d.example_shape else "from the data"
        given = ", ".join(
            f"`{f}`" + (" (required)" if f in d.required else "") + (f" (default {d.defaults[f]})" if f in d.defaults else "")
            for f in d.fields
        ) or "—"
        views = "; ".join(v.markdown() for v in d.views) or "—"
        lines.append(f"| `{d.name}` | {d.doc} | {task} | {shape} | {given} | {views} |")
    return "\n".join(lines)
