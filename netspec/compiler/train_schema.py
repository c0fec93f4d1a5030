"""The `train:` section of a spec: how the network is trained, validated like the rest.

Every top-level field can be overridden from the command line under the same name
(`netspec train spec.yaml --lr 0.1 --epochs 3`), nested ones with `--set optimizer.momentum=0.9`;
`with_overrides` applies them to the raw section and validates the result, so an override
is checked exactly like the file. It is plain data (no torch): the runtime reads it.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from netspec import datasets
from netspec.compiler.messages import message as netspec_message
from netspec.compiler.schema_base import Model
from netspec.errors import Diagnostic, SpecError

DATASETS = datasets.names()
MAX_RATE = 1e6  # lr, weight_decay, grad_clip: anything above is a typo, and overflows float32 state
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")


def _named(value: Any) -> Any:
    """`optimizer: adam` is short for `optimizer: {name: adam}` (same for dataset, schedule)."""
    return {"name": value} if isinstance(value, str) else value


def _or_name(names: tuple[str, ...]) -> Any:
    """JSON schema of a field that is a mapping or just its `name` (for editors)."""

    def extra(schema: dict[str, Any]) -> None:
        as_mapping = dict(schema)
        schema.clear()
        schema["anyOf"] = [as_mapping, {"type": "string", "enum": list(names)}]

    return extra


class _Train(Model):
    """A model of the train section: inf/nan are refused (they would only fail mid-run)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class DatasetSpec(_Train):
    """Where the examples come from."""

    name: Literal[DATASETS] = "fashion_mnist"  # type: ignore[valid-type]
    path: Optional[str] = Field(None, description="csv: the file to read")
    target: Optional[str] = Field(None, description="csv: the target column")
    task: Literal["classification", "regression"] = "classification"
    true_w: list[float] = Field(default_factory=lambda: [2.0, -3.4], description="synthetic_regression: weights")
    true_b: float = Field(4.2, description="synthetic_regression: bias")
    examples: int = Field(1000, gt=0, le=10_000_000, description="synthetic_regression: number of examples")
    noise: float = Field(0.01, ge=0, le=1e6, description="synthetic_regression: std of the target noise; sine_wave: of the series' noise (default 0.2)")
    T: int = Field(1000, gt=1, le=10_000_000, description="sine_wave: length of the series (time steps 1..T)")
    tau: int = Field(4, gt=0, le=1_000_000, description="sine_wave: lagged values per example (its features or steps)")
    n_train: int = Field(600, gt=0, le=10_000_000, description="sine_wave: the first n_train examples train, the rest test")

    @model_validator(mode="after")
    def _required_fields(self) -> "DatasetSpec":
        entry = datasets.get(self.name)
        required = entry.required
        if any(not getattr(self, f) for f in required):
            raise ValueError(f"dataset {self.name} needs " + " and ".join(f"'{f}'" for f in required))
        given = self.model_fields_set - {"name"}
        if "task" in given and entry.task != "task" and self.task == entry.task:
            given.discard("task")  # restating the dataset's own task is harmless
        foreign = sorted(given - set(entry.fields))
        if foreign:
            reads = ", ".join(f"'{f}'" for f in entry.fields) or "no fields"
            raise ValueError(f"dataset {self.name} does not read {', '.join(repr(f) for f in foreign)} (it reads {reads})")
        for key, value in entry.defaults.items():
            if key not in self.model_fields_set:
                setattr(self, key, value)
        if entry.check is not None:
            entry.check(self)
        return self


class OptimizerSpec(_Train):
    """The optimiser and its hyper-parameters (momentum is SGD's only)."""

    name: Literal[OPTIMIZERS] = "sgd"  # type: ignore[valid-type]
    lr: float = Field(0.1, gt=0, le=MAX_RATE)
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd only")
    weight_decay: float = Field(0.0, ge=0, le=MAX_RATE)
    nesterov: bool = Field(False, strict=True, description="sgd only: Nesterov momentum (needs momentum > 0)")

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "OptimizerSpec":
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError(f"nesterov needs optimizer sgd with momentum > 0 (got {self.name}, momentum {self.momentum:g})")
        return self


class ScheduleSpec(_Train):
    """How the learning rate changes over the run (updated every step)."""

    name: Literal[SCHEDULES] = "constant"  # type: ignore[valid-type]
    step_size: int = Field(10, gt=0, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, description="step: decay factor")
    warmup: float = Field(0.0, ge=0, le=100_000, description="epochs of linear warm-up from 0 (constant, step, cosine)")
    min_lr: float = Field(0.0, ge=0, le=MAX_RATE, description="cosine: the learning rate reached at the end")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of the run spent rising to lr")


class AdversarialSpec(_Train):
    """FGSM adversarial training: each batch is replaced by its FGSM perturbation with this eps."""

    eps: float = Field(gt=0, le=1)
    mix: float = Field(0.5, ge=0, le=1, description="fraction of each batch that is adversarial")


class RandomCropSpec(_Train):
    """Zero-pad, then crop back at a random offset."""

    padding: int = Field(4, ge=0, le=1024)


class HorizontalFlipSpec(_Train):
    """Mirror left-right with probability p."""

    p: float = Field(0.5, ge=0, le=1)


class RandomErasingSpec(_Train):
    """Fill a random rectangle (Zhong et al. 2017); scale is a fraction of the image's area."""

    p: float = Field(0.5, ge=0, le=1)
    scale: Annotated[list[float], Field(min_length=2, max_length=2)] = [0.02, 0.33]
    ratio: Annotated[list[float], Field(min_length=2, max_length=2)] = [0.3, 3.3]
    value: float = 0.0
    tries: int = Field(10, ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> "RandomErasingSpec":
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < scale[0] <= scale[1] <= 1, got {list(self.scale)}")
        if not 0 < self.ratio[0] <= self.ratio[1] <= 1e3:
            raise ValueError(f"ratio must satisfy 0 < ratio[0] <= ratio[1] <= 1000, got {list(self.ratio)}")
        return self


def _step_mapping(value: Any) -> Any:
    """`horizontal_flip` is short for `{horizontal_flip: {}}`; `{name: null}` means default params."""
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, Mapping):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


class AugmentStep(_Train):
    """One augmentation: a one-key mapping {name: params} (or just its name). The runtime
    (torch) implements them; their parameters are checked here so `netspec check` sees them."""

    random_crop: Optional[RandomCropSpec] = None
    horizontal_flip: Optional[HorizontalFlipSpec] = None
    random_erasing: Optional[RandomErasingSpec] = None

    @model_validator(mode="after")
    def _one(self) -> "AugmentStep":
        if len(self.model_fields_set) != 1:
            raise ValueError(f"each augmentation is one name or one {{name: params}} mapping; known: {', '.join(type(self).model_fields)}")
        return self

    def as_item(self) -> dict[str, dict[str, Any]]:
        """{name: params} as `netspec.runtime.data.augment.build_augment` takes it (defaults filled in)."""
        (name,) = self.model_fields_set
        params = getattr(self, name).model_dump()
        return {name: {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}}


def _dataset_help() -> str:
    """'fashion_mnist, mnist, synthetic_regression or {name: csv, path:, target:}', from the table."""
    plain = list(datasets.shorthand_names())
    given = [f"{{name: {d.name}, {', '.join(f'{f}:' for f in d.required)}}}" for d in datasets.DATASETS.values() if d.required]
    return " or ".join(filter(None, [", ".join(plain), *given]))


class TrainConfig(_Train):
    """Training hyper-parameters; the zoo carries the textbook's.

    `lr`, `momentum` and `weight_decay` are shorthands: when given they replace the
    optimizer's own value, so `cfg.optimizer` always holds what is used.
    """

    dataset: Annotated[DatasetSpec, BeforeValidator(_named), Field(json_schema_extra=_or_name(datasets.shorthand_names()))] = Field(
        default_factory=DatasetSpec, description=_dataset_help()
    )
    batch_size: int = Field(256, gt=0, le=1_000_000, description="global batch (split across processes)")
    epochs: int = Field(10, gt=0, le=100_000, description="passes over the training set")
    optimizer: Annotated[OptimizerSpec, BeforeValidator(_named), Field(json_schema_extra=_or_name(OPTIMIZERS))] = Field(
        default_factory=OptimizerSpec, description="sgd, adam, adamw, or {name:, lr:, momentum:, weight_decay:}"
    )
    lr: Optional[float] = Field(None, gt=0, le=MAX_RATE, description="shorthand for optimizer.lr")
    momentum: Optional[float] = Field(None, ge=0, lt=1, description="shorthand for optimizer.momentum")
    weight_decay: Optional[float] = Field(None, ge=0, le=MAX_RATE, description="shorthand for optimizer.weight_decay")
    nesterov: Optional[bool] = Field(None, strict=True, description="shorthand for optimizer.nesterov: Nesterov momentum (sgd)")
    warmup: Optional[float] = Field(None, strict=True, ge=0, le=100_000, description="shorthand for schedule.warmup: epochs of linear warm-up before the schedule")
    schedule: Annotated[ScheduleSpec, BeforeValidator(_named), Field(json_schema_extra=_or_name(SCHEDULES))] = Field(
        default_factory=ScheduleSpec, description="learning-rate schedule: constant, step, cosine, onecycle (or a mapping)"
    )
    loss: Literal["cross_entropy", "mse"] = Field("cross_entropy", description="cross_entropy (classes) or mse")
    grad_clip: Optional[float] = Field(None, gt=0, le=MAX_RATE, description="clip the global gradient norm to this")
    seed: int = Field(0, ge=0, le=2**62, description="seeds weights, data order, dropout and augmentation")
    resize: Optional[int] = Field(None, gt=0, le=4096, description="resize images to resize×resize")
    augment: list[Annotated[AugmentStep, BeforeValidator(_step_mapping)]] = Field(
        default_factory=list, description="training-only, per batch: e.g. [{random_crop: {padding: 4}}, horizontal_flip]"
    )
    val_fraction: float = Field(0.0, ge=0, lt=1, description="hold out this fraction of the training set for validation")
    limit: Optional[int] = Field(None, gt=0, description="train on a seeded random subset of this many examples")
    test_limit: Optional[int] = Field(None, gt=0, description="evaluate on the first this-many test examples")
    solver: Literal["sgd", "closed_form"] = Field("sgd", description="closed_form: least squares (one linear layer only)")
    adversarial: Optional[AdversarialSpec] = Field(None, description="FGSM adversarial training, e.g. {eps: 0.1, mix: 0.5}")
    label_smoothing: float = Field(0.0, strict=True, ge=0, lt=1, description="cross_entropy: mix this much of the uniform distribution into the targets (training loss only)")
    ema: Optional[float] = Field(None, strict=True, gt=0, lt=1, description="decay of an exponential moving average of the weights (e.g. 0.999); evaluated and saved instead of the raw weights")
    no_decay_norm_bias: bool = Field(False, strict=True, description="no weight decay on normalisation weights and biases (two parameter groups)")
    tta: Optional[Literal["flip"]] = Field(None, description="test-time augmentation in evaluation: flip averages the logits of each image and its mirror")
    accumulate: int = Field(1, strict=True, ge=1, le=4096, description="gradient accumulation: one optimizer step per this many batches (effective batch = batch_size × accumulate)")
    amp: Optional[Literal["bf16", "fp16", "auto"]] = Field(None, description="autocast: bf16 (CPU or CUDA), fp16 (CUDA), auto (bf16 on CUDA and on CPUs with oneDNN bf16 kernels: AVX-512)")
    channels_last: Optional[bool] = Field(None, strict=True, description="NHWC memory format for image networks (default: on for CUDA)")
    sync_bn: bool = Field(False, strict=True, description="under DDP, batch norms become SyncBatchNorm (statistics over the global batch)")

    @model_validator(mode="after")
    def _fold_shorthands(self) -> "TrainConfig":
        update = {k: getattr(self, k) for k in ("lr", "momentum", "weight_decay", "nesterov") if getattr(self, k) is not None}
        if update:
            self.optimizer = self.optimizer.model_copy(update=update)
        opt = self.optimizer
        if opt.nesterov and (opt.name != "sgd" or opt.momentum <= 0):
            raise ValueError(f"nesterov needs optimizer sgd with momentum > 0 (got {opt.name}, momentum {opt.momentum:g})")
        if self.warmup is not None:
            self.schedule = self.schedule.model_copy(update={"warmup": self.warmup})
        if self.schedule.warmup and self.schedule.name == "onecycle":
            raise ValueError("onecycle warms up by itself (pct_start); warmup applies to constant, step and cosine")
        if self.label_smoothing and self.loss != "cross_entropy":
            raise ValueError("label_smoothing applies to loss cross_entropy")
        return self

    @property
    def task(self) -> str:
        """classification or regression: the dataset's own, or its `task:` where the table says the spec chooses."""
        task = datasets.get(self.dataset.name).task
        return self.dataset.task if task == "task" else task


# ------------------------------------------------------------------ overrides
def override_names() -> dict[str, str]:
    """Top-level fields (the CLI's `--name` options) and their descriptions."""
    return {name: (field.description or name.replace("_", " ")) for name, field in TrainConfig.model_fields.items()}


def parse_value(text: str) -> Any:
    """A command-line value read as YAML 1.2, like spec files (`3` -> int, `1e-3` -> float,
    `[a, b]` -> list); unparsable text stays text."""
    from netspec.compiler.yaml_loader import load_yaml_text

    try:
        return plain(load_yaml_text(text, "<command line>"))
    except SpecError:
        return text


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set tree[path] = value; a shorthand string on the way (`optimizer: sgd`) becomes {name: sgd},
    and a string set on a mapping sets its name (`--optimizer adam` keeps the spec's lr)."""
    key, rest = path[0], path[1:]
    if not rest:
        if isinstance(tree.get(key), dict) and isinstance(value, str) and "name" in _fields_at(key):
            tree[key] = {**tree[key], "name": value}
        else:
            tree[key] = value
        return
    child = tree.get(key)
    if isinstance(child, str):
        child = {"name": child}
    elif not isinstance(child, dict):
        child = {}
    tree[key] = child
    _set(child, rest, value)


def _fields_at(key: str) -> set[str]:
    field = TrainConfig.model_fields.get(key)
    annotation = getattr(field, "annotation", None)
    return set(getattr(annotation, "model_fields", {}))


def plain(value: Any) -> Any:
    """A loaded YAML tree (YDict/YList) as plain dicts and lists, for dumping and merging."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def with_overrides(section: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """Apply `{dotted.name: value}` overrides to a raw `train:` section and validate it.

    Returns the config and the merged raw section (what a run folder's spec.yaml records).
    Errors name the override (`--lr: ...`) and carry a "did you mean" for unknown names.
    """
    merged: dict[str, Any] = copy.deepcopy(plain(section or {}))
    for dotted, value in overrides.items():
        _set(merged, dotted.split("."), value)
    try:
        return TrainConfig.model_validate(merged), merged
    except ValidationError as exc:
        raise SpecError([Diagnostic(None, _message(err, overrides)) for err in exc.errors(include_url=False)]) from None


def _message(err: Mapping[str, Any], overrides: Mapping[str, Any]) -> str:
    path = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal["))]
    dotted = ".".join(path)
    named = next((k for k in overrides if dotted == k or dotted.startswith(k + ".")), None)
    message = netspec_message(err)
    if named is None:
        return f"train.{dotted}: {message}" if dotted else message
    # only top-level fields have options of their own; any other name came through --set
    where = f"--{named.replace('_', '-')}" if named in TrainConfig.model_fields else f"--set {named}"
    inner = dotted[len(named) + 1 :]
    return f"{where}: {inner + ': ' if inner else ''}{message}"
