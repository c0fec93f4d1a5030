"""`netspec attack`: how brittle a trained classifier is under FGSM or PGD.

Loads the spec, its weights and its test set, attacks every test example at each ε, and
writes the accuracy table (printed and `attack.json`), `attack.png` (originals, adversarial
images, perturbations, with class names) and `attack_curve.png` (accuracy against ε).
Torch is imported inside the command only, so `netspec --help` stays fast.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import click

from netspec.commands.variants import variant_option

from netspec.errors import DataError, Diagnostic, NetspecError, SpecError

RUN_FILES = ("model.safetensors", "checkpoint.pt")  # what `netspec train` leaves in a run folder

def parse_eps(values: tuple[str, ...]) -> list[float]:
    """`--eps 0,0.05 --eps 0.1` -> [0.0, 0.05, 0.1]: sorted, de-duplicated, each in [0, 1]."""
    eps: list[float] = []
    for text in values:
        for part in text.split(","):
            part = part.strip()
            try:
                value = float(part)
            except ValueError:
                raise NetspecError(f"--eps: {part!r} is not a number (give e.g. --eps 0,0.05,0.1)") from None
            if not (0.0 <= value <= 1.0):
                raise NetspecError(f"--eps: {part} is out of range; ε must be in [0, 1] (pixels are in [0, 1])")
            eps.append(value)
    if not eps:
        raise NetspecError("--eps: give at least one value")
    return sorted(set(eps))


def _check_classifier(loaded: Any, graph: Any) -> Any:
    """The spec's train config, or a SpecError when the network is not a classifier."""
    from netspec.compiler.train_schema import TrainConfig

    cfg = loaded.spec.train or TrainConfig()
    out = tuple(graph.output_shape)

    def refuse(why: str) -> SpecError:
        return SpecError([Diagnostic(None, f"{loaded.path}: cannot attack: {why}")])

    if len(out) != 1 or out[0] < 2:
        raise refuse(f"the output shape {list(out)} is not a vector of class scores (need [classes] with ≥ 2 classes)")
    if cfg.loss == "mse" or cfg.task == "regression":
        raise refuse(f"it is a regression model (train.loss {cfg.loss}, dataset {cfg.dataset.name}); attacks need a classifier")
    return cfg


def _out_dir(out: Path | None, weights: Path, spec_name: str) -> Path:
    """--out, else the run folder the weights came from, else runs/<spec>/attack-<timestamp>."""
    if out is not None:
        folder = out
    elif weights.is_dir():
        folder = weights
    elif weights.name in RUN_FILES:
        folder = weights.parent
    else:
        folder = Path("runs") / spec_name / time.strftime("attack-%Y%m%d-%H%M%S")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NetspecError(f"--out: cannot create {folder} ({exc.strerror or exc})") from None
    return folder


def _classes(n: int) -> str:
    return f"{n} class" if n == 1 else f"{n} classes"


def _print_table(result: Any, spec_name: str, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    label = f"PGD-{result.steps}" if result.method == "pgd" else "FGSM"
    table = Table(title=f"{spec_name}: {label} on {result.examples} test examples", title_justify="left",
                  header_style="bold")
    for name in ("ε", "clean acc", "adversarial acc", "drop"):
        table.add_column(name, justify="right")
    for e, acc in zip(result.eps, result.adv_acc):
        table.add_row(f"{e:g}", f"{100 * result.clean_acc:.2f}%", f"{100 * acc:.2f}%",
                      f"{100 * (result.clean_acc - acc):+.2f}")
    console = Console()
    console.print(table)
    console.print(f"{result.examples / max(seconds, 1e-9):,.0f} examples/s, all ε ({seconds:.1f} s)")


@click.command("attack")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-w", "--weights", type=click.Path(path_type=Path), default=None,
              help="Trained weights: a run folder holding model.safetensors, or a .safetensors file "
                   "(default: SPEC itself when it is a run folder).")
@click.option("--eps", "eps_values", multiple=True, default=("0.1",), show_default=True,
              help="Max-norm budget ε in pixel units ([0, 1]); a list (--eps 0,0.05,0.1) or repeated.")
@click.option("--method", type=click.Choice(["fgsm", "pgd"]), default=None,
              help="fgsm (one step) or pgd; default fgsm, or pgd when --steps/--alpha is given.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="PGD iterations.  [default: 10]")
@click.option("--alpha", type=float, default=None, help="PGD step size.  [default: 2.5·ε/steps]")
@click.option("--random-start/--no-random-start", default=True, show_default=True,
              help="PGD: start from a uniform random point of the ε-ball.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Attack only the first N test examples.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder with the dataset files (else $NETSPEC_DATA, the user cache, or a download).")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Output folder.  [default: the weights' run folder, else runs/<spec>/attack-<time>]")
@click.option("--samples", type=click.IntRange(min=1, max=32), default=8, show_default=True,
              help="Examples shown in attack.png (attacked at the largest ε).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of PGD's random start.")
@variant_option
def attack(spec: Path, weights: Path | None, eps_values: tuple[str, ...], method: str | None, steps: int | None,
           alpha: float | None, random_start: bool, limit: int | None, batch_size: int, device: str,
           data_dir: Path | None, out: Path | None, samples: int, seed: int, variant: str | None) -> None:
    """Attack SPEC's trained classifier with FGSM or PGD on its test set.

    Prints clean and adversarial accuracy per ε and writes attack.json, attack.png and
    attack_curve.png.

    \b
    netspec attack specs/lenet.yaml -w runs/lenet/<run> --eps 0,0.05,0.1
    netspec attack runs/lenet/<run> --method pgd
    """
    from netspec.commands.train import resolve_run_folder

    spec, weights = resolve_run_folder(spec, weights, "-w/--weights")
    eps = parse_eps(eps_values)
    if method is None:
        method = "pgd" if steps is not None or alpha is not None else "fgsm"
    if method == "fgsm" and (steps is not None or alpha is not None):
        raise NetspecError("--steps and --alpha apply to --method pgd; FGSM is a single step of size ε")
    if alpha is not None and not (alpha > 0 and math.isfinite(alpha)):
        raise NetspecError(f"--alpha: {alpha} must be a positive number")
    steps = steps or 10

    from netspec.api import build_graph, compile as compile_spec, load
    from netspec.runtime.attack.attacks import PIXELS, evaluate_attack, progress_bar
    from netspec.runtime.attack.plot import plot_curve, plot_samples
    from netspec.files import atomic_write
    from netspec.runtime.run.checkpoint import load_weights
    from netspec.runtime.train.device import pick_device
    from netspec.runtime.train.prepare import prepare_data
    from netspec.runtime.run.run_dir import check_writable, writing

    loaded = load(spec, variant=variant)
    graph = build_graph(loaded)
    cfg = _check_classifier(loaded, graph)
    torch_device = pick_device(device)
    model = compile_spec(graph)
    load_weights(model, weights)
    model.to(torch_device)

    data = prepare_data(cfg, data_dir, input_shape=graph.input_shape, spec_dir=Path(loaded.path).parent)
    if data.num_classes != graph.output_shape[0]:
        raise DataError(f"{spec}: the network outputs {_classes(graph.output_shape[0])} but {data.name} has {_classes(data.num_classes)}")
    x, y = data.test_x[:limit], data.test_y[:limit]
    pixels = data.test_x.dim() == 4  # stored images: x/255, so [0, 1] bounds every input
    folder = _out_dir(out, weights, graph.name)
    keep = samples if pixels else 0
    check_writable(folder, ["attack.json", *(["attack.png"] if keep else []), "attack_curve.png"])

    label = f"PGD-{steps}" if method == "pgd" else "FGSM"
    started = time.perf_counter()
    with progress_bar(len(x), f"{label}, {len(eps)} ε") as advance:
        result = evaluate_attack(
            model, x, y, eps, method=method, steps=steps, alpha=alpha, random_start=random_start,
            batch_size=batch_size, device=torch_device, prepare=data.inputs, clamp=PIXELS if pixels else None,
            keep=keep, seed=seed, progress=advance,
        )
    seconds = time.perf_counter() - started

    record = {"spec": str(spec), "weights": str(weights), "dataset": data.name, "device": str(torch_device),
              **result.to_json(), "seconds": round(seconds, 3)}
    text = (json.dumps(record, indent=2) + "\n").encode("utf-8")
    with writing(folder / "attack.json"):
        atomic_write(folder / "attack.json", text)
    written = ["attack.json"]
    if result.samples is not None:
        with writing(folder / "attack.png"):
            plot_samples(result.samples, data.classes, folder / "attack.png", method=label, image_shape=data.test_x.shape[1:])
        written.append("attack.png")
    with writing(folder / "attack_curve.png"):
        plot_curve(result, folder / "attack_curve.png", title=f"{graph.name}: accuracy under {label} ({result.examples} examples)")
    written.append("attack_curve.png")
    _print_table(result, graph.name, seconds)
    click.echo(f"wrote {', '.join(str(folder / w) for w in written)}")


COMMANDS = [attack]
