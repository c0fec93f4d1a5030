"""Training-time augmentations applied to whole batches on the batch's device.

Each function takes an N×C×H×W batch (uint8 or float) and draws per-sample randomness in
one call from `generator` (on the generator's device; CPU when None), so a batch costs a
handful of tensor ops whatever its size, and a fixed generator state gives the same
output. `build_augment` turns the spec's list of {name: params} into one callable.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "AUGMENTATIONS",
    "Augment",
    "build_augment",
    "horizontal_flip",
    "random_crop",
    "random_erasing",
]


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) drawn where the generator lives, then moved next to the data."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p}")


def random_crop(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by `padding` on each side, then crop back to H×W at a random offset per sample.

    The crop is one gather with per-sample row/column index grids (no loop over samples).
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = (_rand((2, n), generator, dev) * (2 * padding + 1)).long()  # each in [0, 2p]
    rows = offsets[0, :, None] + torch.arange(h, device=dev)  # N×H
    cols = offsets[1, :, None] + torch.arange(w, device=dev)  # N×W
    return padded[
        torch.arange(n, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def horizontal_flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each sample left-right with probability `p`."""
    _check_p(p)
    flip = _rand((x.shape[0],), generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erasing(
    x: torch.Tensor,
    p: float = 0.5,
    scale: Sequence[float] = (0.02, 0.33),
    ratio: Sequence[float] = (0.3, 3.3),
    value: float = 0.0,
    generator: torch.Generator | None = None,
    tries: int = 10,
) -> torch.Tensor:
    """With probability `p` per sample, fill a random rectangle with `value` (Zhong et al. 2017).

    Like torchvision: the rectangle's area is a uniform `scale` fraction of the image and its
    aspect ratio log-uniform in `ratio`; of `tries` candidates the first that fits is used,
    and a sample with none that fits is left alone. Vectorised as masks over all tries.
    """
    _check_p(p)
    if not (0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]):
        raise ValueError(f"need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}")
    n, _, h, w = x.shape
    dev = x.device
    u = _rand((4, n, tries), generator, dev)
    apply = _rand((n,), generator, dev) < p
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
    eh = torch.sqrt(area * aspect).round().long()
    ew = torch.sqrt(area / aspect).round().long()
    fits = (eh < h) & (ew < w)
    first = fits.int().argmax(dim=1, keepdim=True)  # first try that fits (0 if none)
    apply &= fits.any(dim=1)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t.gather(1, first).squeeze(1)

    eh, ew = pick(eh), pick(ew)
    top = (pick(u[2]) * (h - eh + 1)).long()
    left = (pick(u[3]) * (w - ew + 1)).long()
    r = torch.arange(h, device=dev)
    c = torch.arange(w, device=dev)
    in_rows = (r >= top[:, None]) & (r < (top + eh)[:, None])  # N×H
    in_cols = (c >= left[:, None]) & (c < (left + ew)[:, None])  # N×W
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
    return x.masked_fill(mask[:, None], value)


AUGMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "random_crop": random_crop,
    "horizontal_flip": horizontal_flip,
    "random_erasing": random_erasing,
}


@dataclass(frozen=True)
class Augment:
    """A chain of augmentations: `aug(x, generator)` applies each step in order."""

    steps: tuple[tuple[str, dict[str, Any]], ...] = ()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for name, params in self.steps:
            x = AUGMENTATIONS[name](x, generator=generator, **params)
        return x

    def __repr__(self) -> str:
        parts = (
            f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})" for name, params in self.steps
        )
        return f"Augment({', '.join(parts)})"


def build_augment(spec: Sequence[Mapping[str, Mapping[str, Any] | None] | str] | None) -> Augment:
    """Turn e.g. [{"random_crop": {"padding": 4}}, {"horizontal_flip": {"p": 0.5}}] (or a bare
    name) into an `Augment`, checking names and parameter names now rather than mid-training."""
    steps = []
    for item in spec or ():
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, Mapping) and len(item) == 1:
            ((name, params),) = item.items()
            params = dict(params or {})
        else:
            raise ValueError(f"each augmentation must be a name or a one-key mapping {{name: params}}, got {item!r}")
        fn = AUGMENTATIONS.get(name)
        if fn is None:
            raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(sorted(AUGMENTATIONS))}")
        if "generator" in params:
            raise ValueError(f"{name}: 'generator' is supplied at call time, not in the spec")
        try:
            inspect.signature(fn).bind(None, **params)
        except TypeError as e:
            raise ValueError(f"{name}: {e}") from None
        steps.append((name, params))
    return Augment(tuple(steps))
