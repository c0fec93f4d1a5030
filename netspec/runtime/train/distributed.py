"""Data-parallel training through torch.distributed, as launched by torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address in each process's
environment; `init_from_env` joins the group (gloo on CPU, nccl on CUDA). A plain process
is rank 0 of 1 and never touches torch.distributed. Every rank holds the same model and
data; `data.Batches(rank=, world_size=)` gives each rank its shard of every global batch,
DDP averages the gradients, and `all_reduce_sum` adds up the metrics. Only rank 0 writes.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from netspec.errors import TrainingError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


LAUNCHED = "NETSPEC_LAUNCHED"  # set for the processes `relaunch` starts: it reports a failure itself
_PEER_LOST = ("Connection reset", "Connection closed", "Broken pipe", "Socket closed", "connection refused")


class PeerLost(TrainingError):
    """Another rank stopped (died, was killed) while this one waited for it in a collective."""


def is_peer_loss(exc: BaseException) -> bool:
    """Whether a collective failed because another process went away (not a bug here)."""
    dist_error = getattr(dist, "DistError", None)
    return (dist_error is not None and isinstance(exc, dist_error)) or any(p.lower() in str(exc).lower() for p in _PEER_LOST)


def env_context() -> DistContext:
    """Rank, world size and local rank from torchrun's environment (1 process when unset)."""
    try:
        return DistContext(
            int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        )
    except ValueError as exc:
        raise TrainingError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from None


def init(ctx: DistContext, device: torch.device) -> None:
    """Join the process group (a no-op for one process): nccl on CUDA, gloo on CPU."""
    if not ctx.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    try:
        dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size, **kwargs)
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(f"cannot join the process group ({backend}, rank {ctx.rank} of {ctx.world_size}): {exc}") from None


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum over ranks, in place (identity for one process)."""
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's `obj`, in rank order (e.g. RNG states for a checkpoint)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_batchnorm(model: nn.Module | None, device: torch.device) -> nn.Module:
    """Batch norms -> SyncBatchNorm (statistics over the global batch, not each rank's shard).

    torch's SyncBatchNorm computes only on GPUs, so a CPU run refuses `sync_bn` rather than
    fail at the first batch.
    """
    if device.type != "cuda":
        raise TrainingError(
            "sync_bn: torch's SyncBatchNorm runs on CUDA devices only; on CPU drop sync_bn (each process normalises its own shard)"
        )
    assert model is not None
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP around the model when there is more than one process (it broadcasts rank 0's weights)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def relaunch(nproc: int, args: list[str]) -> int:
    """Run `python -m netspec <args>` in `nproc` processes on this machine through torchrun.

    Returns 0; a rank that dies (an error, a signal) makes torchrun stop the others, and this
    raises one `TrainingError` naming the first failed rank and its exit code (the rank's own
    message, if it had one, is already printed). torchrun's own failure report is silenced.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    parsed = get_args_parser().parse_args(["--standalone", "--nproc-per-node", str(nproc), "-m", "netspec", *args])
    os.environ[LAUNCHED] = "1"
    quiet = [logging.getLogger(name) for name in ("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher.api")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.CRITICAL)
    try:
        run(parsed)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise TrainingError(f"rank {rank} of {nproc} {describe_exit(failure.exitcode)}; the other ranks were stopped") from None
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
    sys.stdout.flush()
    return 0


def describe_exit(code: int | None) -> str:
    """'exited with code 3', 'was killed by SIGKILL (exit code -9)'."""
    import signal

    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"
