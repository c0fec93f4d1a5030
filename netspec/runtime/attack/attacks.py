"""Adversarial examples (FGSM, PGD) and robustness evaluation over a test set.

FGSM (Goodfellow et al. 2015, the textbook's §8.8) moves every pixel by ε in the direction
that raises the loss fastest under a max-norm budget: `x_adv = x + ε·sign(∇x J(θ, x, y))`.
PGD (Madry et al. 2018) repeats smaller signed steps from a random start inside the ε-ball,
projecting back after each. Both keep the result a valid input (pixels in [0, 1]): the
projection box is the ε-ball intersected with the pixel range, so the max-norm of
`x_adv - x` never exceeds ε.

Gradients are taken with `torch.autograd.grad` with respect to the input only, so the
model's parameters never receive a `.grad` (a trainer can call `fgsm_perturb` between its
own backward passes) and no weight gradients are computed. Functions here take a model and
tensors; loading specs, weights and data is the command's job.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from netspec.runtime.data import to_float

__all__ = [
    "AttackResult",
    "Clamp",
    "Samples",
    "default_alpha",
    "evaluate_attack",
    "fgsm_perturb",
    "pgd_perturb",
    "progress_bar",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Clamp = tuple[float, float] | None  # valid input range, or None for unbounded inputs
PIXELS: Clamp = (0.0, 1.0)  # netspec feeds images as x/255 (see data.to_float)


# --------------------------------------------------------------------------- attacks

def _check_eps(eps: float) -> None:
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")


def _input_grad(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn
) -> tuple[torch.Tensor, torch.Tensor]:
    """∇x of the loss at x, and the logits of that forward pass (clean predictions for free).

    Only x is differentiated: parameters get no `.grad`, and their gradients are not even
    computed (autograd prunes what `inputs` does not need).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        (grad,) = torch.autograd.grad(loss_fn(logits, y), x)
    return grad, logits.detach()


def _box(x: torch.Tensor, eps: float, clamp: Clamp) -> tuple[torch.Tensor, torch.Tensor]:
    """The feasible set as per-element bounds: the ε-ball around x within the valid range."""
    lo, hi = x - eps, x + eps
    if clamp is not None:
        lo, hi = lo.clamp(min=clamp[0]), hi.clamp(max=clamp[1])
    return lo, hi


def _project(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(v, hi), lo)


def _fgsm_step(x: torch.Tensor, direction: torch.Tensor, eps: float, clamp: Clamp) -> torch.Tensor:
    x_adv = x + eps * direction
    return x_adv if clamp is None else x_adv.clamp_(*clamp)


def fgsm_perturb(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    loss_fn: LossFn = F.cross_entropy,
    clamp: Clamp = PIXELS,
) -> torch.Tensor:
    """FGSM: `clamp(x + eps·sign(∇x loss_fn(model(x), y)))`, detached.

    For adversarial training too: the model's mode is left as it is (in train mode its
    batchnorm statistics see the clean batch once more, dropout draws a mask), and its
    parameters get no `.grad`. `x` must be float model input; `clamp=None` for unbounded
    inputs.
    """
    _check_eps(eps)
    grad, _ = _input_grad(model, x, y, loss_fn)
    return _fgsm_step(x.detach(), grad.sign(), eps, clamp)


def default_alpha(eps: float, steps: int) -> float:
    """PGD step size 2.5·ε/steps (Madry et al.): enough to cross the ball and come back."""
    return 2.5 * eps / steps


def pgd_perturb(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float | None = None,
    steps: int = 10,
    loss_fn: LossFn = F.cross_entropy,
    clamp: Clamp = PIXELS,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PGD under the max-norm: `steps` signed steps of size `alpha` (default 2.5·ε/steps),
    each projected onto the ε-ball around x within `clamp`; starts at a uniform random point
    of the ball when `random_start` (drawn from `generator`, which lives on x's device).
    Model mode and parameter gradients are left untouched, as in `fgsm_perturb`."""
    _check_eps(eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    alpha = default_alpha(eps, steps) if alpha is None else alpha
    if not (alpha >= 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    x = x.detach()
    lo, hi = _box(x, eps, clamp)
    x_adv = x
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = _project(x + eps * (2 * noise - 1), lo, hi)
    for _ in range(steps):
        grad, _ = _input_grad(model, x_adv, y, loss_fn)
        x_adv = _project(x_adv + alpha * grad.sign(), lo, hi)
    return x_adv


# --------------------------------------------------------------------------- evaluation

@dataclass
class Samples:
    """A few test examples for the picture: originals, their attacked versions at `eps`,
    true labels and both predictions (all on the CPU)."""

    eps: float
    x: torch.Tensor
    x_adv: torch.Tensor
    y: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor


@dataclass
class AttackResult:
    """Accuracy on clean inputs and under attack at each ε (fractions in [0, 1])."""

    method: str
    eps: list[float]
    alpha: list[float]  # step size per ε (FGSM: one step of size ε)
    steps: int
    examples: int
    clean_acc: float
    adv_acc: list[float]
    random_start: bool = False
    samples: Samples | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {
            "method": self.method, "eps": self.eps, "clean_acc": self.clean_acc, "adv_acc": self.adv_acc,
            "examples": self.examples, "steps": self.steps, "alpha": self.alpha, "random_start": self.random_start,
        }


def evaluate_attack(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: Sequence[float],
    *,
    method: str = "fgsm",
    steps: int = 10,
    alpha: float | None = None,
    random_start: bool = True,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    prepare: Callable[[torch.Tensor], torch.Tensor] = to_float,
    clamp: Clamp = PIXELS,
    loss_fn: LossFn = F.cross_entropy,
    keep: int = 8,
    sample_eps: float | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> AttackResult:
    """Clean and adversarial accuracy of `model` on (x, y) for every ε, in eval mode.

    `x` holds dataset examples (e.g. uint8 images) and `prepare` turns a batch, once on
    `device`, into model input. FGSM needs one gradient per batch for all ε (the sign does
    not depend on ε); PGD runs `steps` gradients per ε. The first `keep` examples, attacked
    at `sample_eps` (default the largest ε), are returned for the picture. `progress` is
    called with the number of examples finished after each batch.
    """
    if method not in ("fgsm", "pgd"):
        raise ValueError(f"method must be 'fgsm' or 'pgd', got {method!r}")
    eps = [float(e) for e in eps]
    if not eps:
        raise ValueError("need at least one eps")
    for e in eps:
        _check_eps(e)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    steps = 1 if method == "fgsm" else steps
    alphas = [e if method == "fgsm" else (default_alpha(e, steps) if alpha is None else alpha) for e in eps]
    sample_eps = max(eps) if sample_eps is None else sample_eps
    device = torch.device(device) if device is not None else next(model.parameters(), torch.empty(0)).device
    generator = torch.Generator(device=device).manual_seed(seed)

    was_training = model.training
    model.eval()
    clean_correct = torch.zeros((), dtype=torch.long, device=device)
    adv_correct = torch.zeros(len(eps), dtype=torch.long, device=device)
    kept: dict[str, list[torch.Tensor]] = {k: [] for k in ("x", "x_adv", "y", "clean_pred", "adv_pred")}
    n_kept = 0
    try:
        for start in range(0, len(x), batch_size):
            xb = prepare(x[start : start + batch_size].to(device))
            yb = y[start : start + batch_size].to(device)
            if method == "fgsm":
                grad, logits = _input_grad(model, xb, yb, loss_fn)
                direction = grad.sign()
            else:
                with torch.no_grad():
                    logits = model(xb)
            clean_pred = logits.argmax(1)
            clean_correct += (clean_pred == yb).sum()
            for i, (e, a) in enumerate(zip(eps, alphas)):
                if method == "fgsm":
                    x_adv = _fgsm_step(xb, direction, e, clamp)
                else:
                    x_adv = pgd_perturb(model, xb, yb, e, a, steps, loss_fn, clamp, random_start, generator)
                with torch.no_grad():
                    adv_pred = model(x_adv).argmax(1)
                adv_correct[i] += (adv_pred == yb).sum()
                if n_kept < keep and e == sample_eps:
                    take = slice(0, keep - n_kept)
                    for k, v in zip(kept, (xb, x_adv, yb, clean_pred, adv_pred)):
                        kept[k].append(v[take].detach().cpu())
                    n_kept += len(kept["y"][-1])
            if progress is not None:
                progress(len(yb))
    finally:
        model.train(was_training)

    n = len(x)
    samples = None
    if kept["y"]:
        samples = Samples(sample_eps, *(torch.cat(v) for v in kept.values()))
    return AttackResult(
        method=method, eps=eps, alpha=alphas, steps=steps, examples=n,
        clean_acc=clean_correct.item() / n if n else math.nan,
        adv_acc=[c / n if n else math.nan for c in adv_correct.tolist()],
        random_start=method == "pgd" and random_start, samples=samples,
    )


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (examples done, rate, time left); yields `advance(n)`."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("examples"), TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
