"""Choosing the device and its speed settings: AMP, channels-last, cuDNN autotuning.

Kept apart from the training loop so that `eval`, attacks and benchmarks set a device up
the same way. Asking for something the machine cannot do (CUDA without a GPU, fp16 on CPU)
is a `TrainingError` with one line saying what is missing.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from netspec.errors import TrainingError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` is CUDA when present (this process's local GPU under torchrun), else CPU."""
    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise TrainingError(f"--device: unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); use --device cpu")
    if name == "cuda":
        index = local_rank % torch.cuda.device_count()
    else:
        try:
            index = int(name.split(":", 1)[1])
        except ValueError:
            raise TrainingError(f"--device: bad device {name!r}; use cuda:N") from None
        if not 0 <= index < torch.cuda.device_count():
            raise TrainingError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices (0..{torch.cuda.device_count() - 1})")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


@dataclass(frozen=True)
class DeviceSetup:
    """How compute runs on one device."""

    device: torch.device
    amp: str | None = None  # "bf16" | "fp16" | None
    channels_last: bool = False

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has float32's range."""
        return self.amp == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp])

    def describe(self) -> str:
        name = f"{self.device} ({torch.cuda.get_device_name(self.device)})" if self.is_cuda else "cpu"
        extras = [f"amp {self.amp}"] * bool(self.amp) + ["channels-last"] * self.channels_last
        return name + (f", {', '.join(extras)}" if extras else "")


def setup(
    device: torch.device,
    amp: str | None = None,
    channels_last: bool | None = None,
    deterministic: bool = False,
) -> DeviceSetup:
    """Check the AMP choice against the device and set the backend flags for speed or determinism.

    On CUDA, cuDNN autotuning and TF32 matmuls are on unless `deterministic`; channels-last
    defaults to on for CUDA (tensor cores want NHWC).
    """
    if amp is not None and amp not in AMP_DTYPES:
        raise TrainingError(f"--amp: unknown {amp!r}; use bf16 or fp16")
    if amp == "fp16" and device.type != "cuda":
        raise TrainingError("--amp fp16 needs a CUDA device (use --amp bf16 on CPU)")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError(f"--amp bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; use --amp fp16")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
    if channels_last is None:
        channels_last = device.type == "cuda"
    return DeviceSetup(device, amp, channels_last)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host tensor to `device` through pinned memory, asynchronously (no-op on CPU)."""
    if device.type != "cuda" or t.device == device:
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
