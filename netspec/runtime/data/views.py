"""How stored examples become model input, per batch on its device: x/255, resize."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize", "to_float"]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] (x/255, like torchvision's ToTensor); floats pass through."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x if x.is_floating_point() else x.to(torch.float32)


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a float N×C×H×W batch on its device (e.g. 28→224 for AlexNet).

    antialias=False matches what upsampling does anyway and is fast on every backend.
    """
    if not x.is_floating_point():
        raise TypeError(f"resize needs float images (use to_float first), got {x.dtype}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
