"""One caller's request to a ``diffmic.batching.Batcher`` and the chain its batch shares: the worker fills
them in, the caller reads its own ``Prepared`` image and its own row of every step from them."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Hashable, Iterator

import numpy as np
import torch

from .chain import DenoiseState, label_to_probs
from .options import SamplingOptions
from .pipeline import DiffMICPipeline
from .pipeline_outputs import Prepared


class ChainProgress:
    """The chain of one batch as it runs: the states so far, shared by the batch's callers."""

    def __init__(self, temperature: float):
        self.total = 0  # steps of the chain, known from its first state
        self.timesteps: list[int] = []
        self.temperature = temperature
        self.samples: list[torch.Tensor] = []  # (B, N, C) after each step
        self.finished = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self._probs: torch.Tensor | None = None

    def add(self, state: DenoiseState, notify: bool) -> None:
        """Record the batch's state after one more step; wake the callers if ``notify``."""
        with self.cond:
            self.total = state.total
            self.timesteps.append(state.t)
            self.samples.append(state.sample)
            if notify:
                self.cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """The chain ended (or failed); wake every caller."""
        with self.cond:
            self.finished, self.error = True, error
            self.cond.notify_all()

    def wait(self, seen: int) -> tuple[int, bool]:
        """Block until there are more than ``seen`` states or the chain ended: (states so far, ended)."""
        with self.cond:
            while len(self.samples) <= seen and not self.finished:
                self.cond.wait()
            return len(self.samples), self.finished

    def probs(self) -> torch.Tensor:
        """(steps, B, N, C) class probabilities of every step, computed once for the batch when first read."""
        with self.cond:
            if self._probs is None:
                self._probs = label_to_probs(torch.stack(self.samples), self.temperature).cpu()
            return self._probs


class BatchRequest:
    """One caller's request, and what its caller reads back: its ``Prepared`` image, then its chain."""

    def __init__(self, pipe: DiffMICPipeline, options: SamplingOptions, x: torch.Tensor, pixels: np.ndarray):
        self.pipe, self.options, self.x, self.pixels = pipe, options, x, pixels
        self.key: Hashable = (pipe, options.with_(seed=0))  # what may share a batch
        self.arrived = time.monotonic()
        self.cancelled = False
        self.error: BaseException | None = None
        self.prepared_image: Prepared | None = None
        self.progress: ChainProgress | None = None
        self.row = 0
        self._ready = threading.Event()

    # ------------------------------------------------------------------ the worker's side
    def resolve(self, prepared: Prepared | None, error: BaseException | None = None) -> None:
        """The image's once-per-image passes are done (or failed)."""
        self.prepared_image, self.error = prepared, error
        self._ready.set()

    # ------------------------------------------------------------------ the caller's side
    def prepared(self) -> Prepared:
        """The image after the DCG (waits for its batch); raises this request's own error."""
        self._ready.wait()
        if self.error is not None:
            raise self.error
        assert self.prepared_image is not None
        return self.prepared_image

    def states(self) -> Iterator[DenoiseState]:
        """This image's state after every step of its batch's chain, as the chain runs."""
        self.prepared()
        progress = self.progress
        assert progress is not None
        seen, ended = 0, False
        while not ended:
            count, ended = progress.wait(seen)
            for j in range(seen, count):
                sample = progress.samples[j][self.row : self.row + 1]
                yield DenoiseState(j, progress.total, progress.timesteps[j], sample, progress.temperature)
            seen = count
        if progress.error is not None:
            raise progress.error

    def outcome(self) -> tuple[DenoiseState, np.ndarray]:
        """Wait for the end of the chain: the final state and (steps, N, C) probabilities of every step."""
        self.prepared()
        progress = self.progress
        assert progress is not None
        progress.wait(sys.maxsize)
        if progress.error is not None:
            raise progress.error
        j, row = progress.total - 1, self.row
        final = DenoiseState(
            j, progress.total, progress.timesteps[j], progress.samples[j][row : row + 1], progress.temperature
        )
        return final, progress.probs()[:, row].numpy()

    def cancel(self) -> None:
        """The caller has gone: its batch need not wait for it nor run for it."""
        self.cancelled = True
