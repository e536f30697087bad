"""Data-parallel training under ``torchrun``: rank and world size, gradient averaging, each rank's batches."""

from __future__ import annotations

import os

import numpy as np
import torch


class Distributed:
    """Rank and world size from torchrun's environment; gradient averaging across processes."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def main(self) -> bool:
        """True on the process that validates and writes files."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This process's device: under torchrun, an unnumbered ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if self.world > 1 and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """All-reduce and average gradients (a no-op in a single process)."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world

    def share(self, value):
        """Rank 0's ``value`` on every rank (any picklable object; a no-op in a single process)."""
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def sync_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if self.world == 1:
            return
        for tensor in module.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)

    def barrier(self) -> None:
        """Wait for every process."""
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        """Leave the process group (if one was joined)."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, dist: Distributed) -> list[np.ndarray]:
    """This process's share of a seeded permutation, cut into batches (a last batch of one is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)[dist.rank :: dist.world]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [b for b in batches if len(b) >= 2]
