"""`netspec train` and `netspec eval`.

Every field of the spec's `train:` section is an option of the same name (`--lr 0.1`,
`--batch-size 128` or `--batch_size 128`), generated from the schema so the two never drift
apart; nested fields go through `--set optimizer.momentum=0.9`. Values are read as YAML
(`--augment "[horizontal_flip]"`). torch is imported only inside the command bodies.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from netspec.commands.variants import load_variant, variant_option
from netspec.compiler.train_schema import override_names, parse_value

_PREFIX = "override_"
MAX_NPROC = 1024  # processes per node; more is a typo


def _override_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """One option per top-level train field, plus --set for nested ones."""
    for name, help_text in reversed(override_names().items()):
        decls = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        f = click.option(*decls, f"{_PREFIX}{name}", metavar="VALUE", default=None, help=f"train.{name}: {help_text}")(f)
    return click.option(
        "--set", "set_", multiple=True, metavar="KEY=VALUE",
        help="Override any train field by its dotted name, e.g. --set optimizer.momentum=0.9 (repeatable).",
    )(f)


def _collect_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Pop the override options out of the command's parameters as {dotted name: value}."""
    overrides = {k[len(_PREFIX):]: parse_value(params.pop(k)) for k in list(params) if k.startswith(_PREFIX) and params[k] is not None}
    for k in [k for k in params if k.startswith(_PREFIX)]:
        params.pop(k)
    for item in params.pop("set_", ()) or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        overrides[key.strip()] = parse_value(value)
    return overrides


def _device_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads per process (default: torch's choice)."),
        click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                     help="Where to look for datasets first (then $NETSPEC_DATA, ~/.cache/netspec, system copies)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class _KeepArgs(click.Command):
    """Remembers the raw arguments, so `--nproc-per-node` can re-launch the same command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["netspec.args"] = list(args)
        return super().parse_args(ctx, args)


def _without_nproc(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--nproc-per-node", "--nproc_per_node"):
            skip = True
        elif not a.startswith(("--nproc-per-node=", "--nproc_per_node=")):
            out.append(a)
    return out


def resolve_run_folder(spec: Path, weights: Path | None, option: str) -> tuple[Path, Path]:
    """SPEC may be a run folder: then it means the run's spec.yaml, and its weights by default."""
    if spec.is_dir():
        weights = weights or spec
        spec = spec / "spec.yaml"
    if weights is None:
        raise click.UsageError(f"{option} RUN_DIR (or a .safetensors file) is required unless SPEC is a run folder")
    return spec, weights


@click.command("train", cls=_KeepArgs)
@click.argument("spec", required=False, type=click.Path(path_type=Path))
@_override_options
@_device_options
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (first epoch pays for compiling).")
@click.option("--deterministic", is_flag=True, help="Deterministic CUDA kernels (slower; CPU runs are deterministic anyway).")
@click.option("--out", type=click.Path(), default=None, help="Run folder, new or empty (default runs/<spec name>/<timestamp>).")
@click.option("--resume", type=click.Path(path_type=Path), default=None, help="Continue the run in this folder from its last checkpoint; 'auto': the run in --out if it has one, else start it (for torchrun --max-restarts).")
@click.option("--kfold", type=click.IntRange(min=2), default=None, help="K-fold cross-validation on the training set: mean and spread.")
@click.option("--grad-norms", is_flag=True, help="Record each layer's gradient norm per epoch (grad_norms.png).")
@click.option("--nproc-per-node", type=click.IntRange(min=1, max=MAX_NPROC), default=1, show_default=True,
              help="Data-parallel processes on this machine (re-launches through torchrun).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; print only the summary.")
@variant_option
@click.pass_context
def train(ctx: click.Context, spec: Path | None, **params: Any) -> None:
    """Train SPEC on its dataset; writes a run folder with metrics, curves and weights.

    \b
    netspec train specs/lenet.yaml
    netspec train specs/resnet18.yaml --device cuda --amp bf16
    netspec train specs/lenet.yaml --epochs 3 --lr 0.5 --limit 5000
    netspec train --resume runs/lenet/20250101-120000
    torchrun --max-restarts 3 --nproc-per-node 2 -m netspec train specs/lenet.yaml --out runs/l --resume auto
    torchrun --nproc-per-node 8 -m netspec train specs/resnet18.yaml
    """
    from netspec.errors import TrainingError

    overrides = _collect_overrides(params)
    nproc = params.pop("nproc_per_node")
    variant = params.pop("variant")
    if variant is not None and params["resume"] is not None:
        raise click.UsageError("--resume builds the variant its run folder recorded; leave out --variant")
    if spec is None and params["resume"] is None:
        raise click.UsageError("give a SPEC to train, or --resume RUN_DIR")
    if spec is not None and params["resume"] is not None and str(params["resume"]) != "auto":
        raise click.UsageError("--resume takes the spec from the run folder; give either SPEC or --resume (and --epochs to train longer)")
    if params["out"] is not None and not params["out"].strip():
        raise TrainingError("--out: empty folder name; give the run folder to create")

    from netspec.runtime.train.entry import RunOptions, train as run_train

    options = RunOptions(
        device=params["device"], compile=params["compile_"],
        deterministic=params["deterministic"], out=Path(params["out"]) if params["out"] is not None else None,
        resume=params["resume"], data_dir=params["data_dir"],
        kfold=params["kfold"], grad_norms=params["grad_norms"], quiet=params["quiet"], threads=params["threads"],
    )
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from netspec.runtime.train.distributed import relaunch
        from netspec.runtime.train.entry import precheck

        precheck(load_variant(spec, variant), overrides, options, nproc)  # errors once, here, not once per process after the launch
        sys.exit(relaunch(nproc, ["train", *_without_nproc(ctx.meta.get("netspec.args", []))]))
    from netspec.runtime.train.distributed import LAUNCHED, PeerLost
    from netspec.runtime.run.run_dir import RunInterrupted

    try:
        result = run_train(load_variant(spec, variant), overrides, options)
    except RunInterrupted as stop:
        if stop.resumable and int(os.environ.get("RANK", 0)) == 0:
            click.echo(f"resume with: netspec train --resume {stop.folder}", err=True)
        raise
    except PeerLost:
        if os.environ.get(LAUNCHED):  # the launcher names the rank that died, in one line
            sys.exit(2)
        raise
    if int(os.environ.get("RANK", 0)) == 0:
        _print_summary(result)


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _print_summary(result: Any) -> None:
    s = result.summary
    if "kfold" in s:
        key = "val_acc" if s.get("val_acc_mean") is not None else "val_loss"
        for fold in s["folds"]:
            click.echo(f"fold {fold['fold']}: {key.replace('_', ' ')} {_fmt(fold[key], '.4f')}")
        click.echo(f"{s['kfold']}-fold {key.replace('_', ' ')}: {s[key + '_mean']:.4f} ± {s[key + '_std']:.4f} (mean ± std)")
    else:
        parts = [f"loss {_fmt(s['train_loss'], '.4g')}"]
        parts += [f"{k.replace('_', ' ')} {_fmt(s[k])}" for k in ("train_acc", "val_acc", "test_acc") if s.get(k) is not None]
        if s.get("test_acc") is None and s.get("test_loss") is not None:
            parts.append(f"test loss {s['test_loss']:.4g}")
        click.echo(", ".join(parts))
        _print_regression(result)
    if s.get("examples_per_s"):
        click.echo(f"{s['examples_per_s']:,.0f} examples/sec on {s['device']}" + (f" × {s['processes']} processes" if s["processes"] > 1 else ""))
    if result.run_dir is not None:
        click.echo(f"run folder: {result.run_dir}")


def _print_regression(result: Any) -> None:
    """For one linear layer on synthetic data, the learned w, b next to the true ones (as the textbook does)."""
    from torch import nn

    from netspec import datasets

    cfg = result.config
    linears = [m for m in result.model.modules() if isinstance(m, nn.Linear)]
    if cfg is None or "true_w" not in datasets.get(cfg.dataset.name).fields or len(linears) != 1 or linears[0].out_features != 1:
        return
    w = [round(v, 4) for v in linears[0].weight.detach().flatten().tolist()]
    b = round(float(linears[0].bias.detach()), 4) if linears[0].bias is not None else 0.0
    click.echo(f"w {w} (true {cfg.dataset.true_w}), b {b} (true {cfg.dataset.true_b})")


@click.command("eval")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Run folder or .safetensors file (default: SPEC itself when it is a run folder).")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_override_options
@_device_options
@variant_option
def eval_(spec: Path, weights: Path | None, split: str, as_json: bool, variant: str | None, **params: Any) -> None:
    """Print the test loss and accuracy of SPEC with trained weights.

    \b
    netspec eval specs/lenet.yaml --weights runs/lenet/20250101-120000
    netspec eval runs/lenet/20250101-120000
    """
    overrides = _collect_overrides(params)
    spec, weights = resolve_run_folder(spec, weights, "--weights")

    from netspec.runtime.train.entry import RunOptions, evaluate_spec

    options = RunOptions(
        device=params["device"], data_dir=params["data_dir"], threads=params["threads"]
    )
    result = evaluate_spec(load_variant(spec, variant), weights, overrides, options, split=split)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    line = f"{split} loss {result['loss']:.4g}"
    if result["acc"] is not None:
        line += f", {split} acc {result['acc']:.4f}"
    click.echo(f"{line} ({result['examples']:,} examples, {result['device']})")


COMMANDS = [train, eval_]
