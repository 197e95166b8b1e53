"""Process-group set-up and the few collectives the training loop needs.

A run is distributed when it is started by ``torchrun`` (or any launcher that sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``) with ``WORLD_SIZE > 1``; otherwise it is a
single process and every helper here is a cheap no-op. The backend is NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.utils.data

from jepa_world.devices import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, and its ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  #: this call created the process group (and should destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the process group described by the environment (if any) and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world_size <= 1:
        return DistInfo(0, 1, 0, resolve_device(device), owns_group=False)
    dev = resolve_device(device, local_rank)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns_group=owns)


def cleanup(info: DistInfo, synchronize: bool = True) -> None:
    """Destroy the process group if :func:`setup` created it.

    ``synchronize``: wait for every rank first (after a normal finish). Tearing gloo down while a
    peer still talks to it can abort the process ("terminate called without an active
    exception"); after an error a barrier could hang on a dead rank, so it is skipped.
    """
    if info.owns_group and dist.is_initialized():
        if synchronize and info.distributed:
            dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects only)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a new tensor; the input is untouched)."""
    if not info.distributed:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


class ResumableSampler(torch.utils.data.Sampler[int]):
    """This rank's shard of a shuffled epoch (:class:`DistributedSampler`), resumable mid-epoch.

    Epoch ``e`` is the permutation seeded by ``seed + e``, split across ranks exactly as
    ``DistributedSampler`` does (disjoint shards, padded to equal length). Setting
    ``start_batch = k`` skips the first ``k * batch_size`` indices of the shard, so a resumed run
    sees the same clips in the same order as an uninterrupted one.
    """

    def __init__(self, dataset_len: int, batch_size: int, info: DistInfo, seed: int = 0) -> None:
        from torch.utils.data import DistributedSampler

        self.inner = DistributedSampler(range(dataset_len), num_replicas=info.world_size,
                                        rank=info.rank, shuffle=True, seed=seed, drop_last=False)
        self.batch_size = batch_size
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        """Full batches in one epoch of this rank's shard (the last partial one is dropped)."""
        return len(self.inner) // self.batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.start_batch = start_batch

    def __iter__(self):
        indices = list(self.inner)
        return iter(indices[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.start_batch * self.batch_size)


__all__ = ["DistInfo", "ResumableSampler", "all_gather_object", "all_reduce_mean",
           "barrier", "broadcast_object", "cleanup", "resolve_device", "setup"]
