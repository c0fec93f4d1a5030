"""Batching of in-memory tensors: seeded per-epoch shuffles, the shard each rank of a
data-parallel run owns, and index splits (train/val, k-fold). Pure index arithmetic on
tensors, independent of where the data came from."""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

__all__ = ["Batches", "iterate_batches", "kfold_indices", "num_batches", "shard", "train_val_split"]


def shard(n: int, rank: int, world_size: int) -> slice:
    """The part of an n-long global batch that `rank` owns: the rank-th of `world_size`
    equal contiguous slices, length n // world_size (the remainder is dropped so every rank
    does the same work).

    Used per step by `iterate_batches`: every rank draws the same seeded permutation
    `perm`, the global batch at step t is perm[t*B:(t+1)*B] with B = world_size × per-rank
    batch, and rank r takes `global[shard(B, r, world_size)]`. So a 1-process run with
    batch B and a 2-process run with per-rank batch B/2 see exactly the same examples at
    every step, and gradient averaging across ranks reproduces the 1-process update.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    per = n // world_size
    return slice(rank * per, (rank + 1) * per)


def num_batches(n: int, batch_size: int, drop_last: bool = False, world_size: int = 1) -> int:
    """How many batches `iterate_batches` yields per epoch (the same on every rank)."""
    usable = n - n % world_size
    global_batch = batch_size * world_size
    return usable // global_batch if drop_last else math.ceil(usable / global_batch)


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (x[idx], y[idx]) batches, idx sliced from one `torch.randperm`.

    `batch_size` is per rank. With `world_size` > 1 all ranks must pass generators in the
    same state (same seed): see `shard` for how the global batch is split. The n % world_size
    leftover examples are skipped so every rank yields the same number of batches; a last,
    smaller global batch is split evenly too unless `drop_last`. With world_size=1 every
    index appears exactly once per epoch (unless `drop_last`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    shard(0, rank, world_size)  # validates rank / world_size
    n = len(x)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if shuffle:
        perm = torch.randperm(n, generator=generator, device=gen_device)
    else:
        perm = torch.arange(n, device=gen_device)
    perm = perm[: n - n % world_size].to(x.device)
    global_batch = batch_size * world_size
    for t in range(num_batches(n, batch_size, drop_last, world_size)):
        chunk = perm[t * global_batch : (t + 1) * global_batch]
        idx = chunk[shard(len(chunk), rank, world_size)]
        yield x[idx], y[idx.to(y.device)]


class Batches:
    """Re-iterable epochs of batches with a reproducible per-epoch shuffle.

    The permutation of epoch e comes from a generator seeded with (seed, e), so every rank of
    a data-parallel run agrees without communicating, and a resumed run (`set_epoch`)
    continues with exactly the shuffles it would have seen. Passing `device` moves the whole
    dataset there once, so batching is pure on-device indexing.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> None:
        if device is not None:
            x, y = x.to(device), y.to(device)
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        shard(0, rank, world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's shuffle the next iteration uses (e.g. after resuming)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return num_batches(len(self.x), self.batch_size, self.drop_last, self.world_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (1 << 63))
        self.epoch += 1
        return iterate_batches(
            self.x, self.y, self.batch_size, self.shuffle, g, self.drop_last, self.rank, self.world_size
        )


def train_val_split(n: int, val_fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train_idx, val_idx) with round(n × val_fraction) validation indices."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[n_val:], perm[:n_val]


def kfold_indices(n: int, k: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """k (train_idx, val_idx) pairs; the val parts partition range(n) in sizes differing by ≤ 1."""
    if not 2 <= k <= n:
        raise ValueError(f"need 2 <= k <= n for k-fold, got k={k}, n={n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    folds = torch.tensor_split(perm, k)
    return [
        (torch.cat([f for j, f in enumerate(folds) if j != i]), folds[i])
        for i in range(k)
    ]
