"""Batched serving: requests that arrive together run as one batch, and each caller still gets its own answer.

A ``Batcher`` takes requests (an image already decoded and normalised in the caller's thread, its pipeline
and its ``SamplingOptions``) and runs those for the same pipeline and the same options apart from the seed
together: their images through the DCG as one batch, their chains as one batched head (``diffmic.lean``).
Each image's noise comes from a generator of its own seed, so every caller gets the numbers it would get
alone (to float rounding). A worker takes at most ``max_batch`` requests and waits at most ``max_wait_s``
after the oldest one arrived, and only while requests of the same kind are still being decoded: a request
that finds the server idle starts at once. Requests of another pipeline or other options wait for the next
batch (the oldest request always goes first).

A request fails alone: a bad image fails while it is decoded, in its caller's thread, before it joins a
batch; an image the batched DCG cannot take is retried on its own. A caller that stops (``Stop``, a
dropped connection) leaves its batch; a batch that everyone has left stops.

``BatchedPipeline`` is a ``DiffMICPipeline`` whose ``run`` (streamed) and ``__call__`` go through a
batcher; everything else (Grad-CAM, the distribution check, evaluation's batches) is the pipeline's own.
A request and the chain its batch shares are ``diffmic.batch_request``'s.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .batch_request import BatchRequest, ChainProgress
from .chain import DenoiseState
from .diffusion import sampler_class
from .model import Conditioning, DiffMIC
from .options import SamplingOptions
from .pipeline import DiffMICPipeline, ImageLike
from .pipeline_outputs import DiffMICOutput, Prepared, recorded

MAX_BATCH = 8
MAX_WAIT_S = 0.02
WORKERS = 2
NOTIFY_S = 0.02  # streamed callers are woken at most this often while a chain runs (and at its end)


def image_row(value: Any, i: int) -> Any:
    """Row ``i`` (as a batch of one) of a batched tensor, or of every tensor in a dataclass of them."""
    if isinstance(value, torch.Tensor):
        return value[i : i + 1]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: image_row(getattr(value, f.name), i) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


def join_rows(values: list[Any]) -> Any:
    """The batch of several batches (``image_row``'s inverse): tensors concatenated, field by field."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(values)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        fields = [f.name for f in dataclasses.fields(first) if f.init]
        return dataclasses.replace(first, **{n: join_rows([getattr(v, n) for v in values]) for n in fields})
    return first


class Batcher:
    """Runs concurrent requests in batches on ``workers`` threads (see the module's docstring)."""

    def __init__(self, max_batch: int = MAX_BATCH, max_wait_s: float = MAX_WAIT_S, workers: int = WORKERS):
        if max_batch < 1 or workers < 1 or max_wait_s < 0:
            raise ValueError("max_batch and workers must be >= 1 and max_wait_s >= 0")
        self.max_batch, self.max_wait_s, self.workers = max_batch, max_wait_s, workers
        self._cond = threading.Condition()
        self._pending: list[BatchRequest] = []
        self._incoming: dict[Hashable, int] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.batch_sizes: list[int] = []  # of the batches run so far (the last 1000)

    @contextmanager
    def incoming(self, key: Hashable) -> Iterator[None]:
        """A request of kind ``key`` is being decoded: a worker about to run that kind may wait for it."""
        with self._cond:
            self._incoming[key] = self._incoming.get(key, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._incoming[key] -= 1
                if not self._incoming[key]:
                    del self._incoming[key]
                self._cond.notify_all()

    def submit(self, request: BatchRequest) -> BatchRequest:
        """Queue a request; its caller reads the answer from it."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"diffmic-batcher-{len(self._threads)}")
                thread.daemon = True
                thread.start()
                self._threads.append(thread)
            self._pending.append(request)
            self._cond.notify_all()
        return request

    def waiting(self) -> int:
        """Requests queued and not yet taken by a worker."""
        with self._cond:
            return sum(not r.cancelled for r in self._pending)

    def close(self) -> None:
        """Stop the workers after their current batch; requests still waiting fail."""
        with self._cond:
            self._closed = True
            waiting, self._pending = self._pending, []
            self._cond.notify_all()
        for request in waiting:
            request.resolve(None, RuntimeError("the server is shutting down"))
        for thread in self._threads:
            thread.join(timeout=30)

    # ------------------------------------------------------------------ the workers
    def _next_batch(self) -> list[BatchRequest] | None:
        """The oldest waiting request and up to max_batch - 1 more of its kind (None once closed)."""
        with self._cond:
            while True:
                self._pending = [r for r in self._pending if not r.cancelled]
                if self._closed:
                    return None
                if not self._pending:
                    self._cond.wait()
                    continue
                first = self._pending[0]
                batch = [r for r in self._pending if r.key == first.key][: self.max_batch]
                remaining = first.arrived + self.max_wait_s - time.monotonic()
                if len(batch) >= self.max_batch or not self._incoming.get(first.key) or remaining <= 0:
                    taken = {id(r) for r in batch}
                    self._pending = [r for r in self._pending if id(r) not in taken]
                    self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
                    return batch
                self._cond.wait(remaining)

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                run_batch(batch)
            except BaseException as err:  # noqa: BLE001 - every caller must hear of it; the worker goes on
                for request in batch:
                    if not request._ready.is_set():
                        request.resolve(None, err)
                    elif request.progress is not None and not request.progress.finished:
                        request.progress.finish(err)
            del batch  # an idle worker holds no model, image or chain


def run_batch(batch: list[BatchRequest]) -> None:
    """The DCG over the batch's images, then one chain for those whose images it took."""
    pipe = batch[0].pipe
    with torch.inference_mode():
        conditionings = condition_each(pipe.model, [r.x for r in batch])
        for request, conditioning in zip(batch, conditionings, strict=True):
            if isinstance(conditioning, BaseException):
                request.resolve(None, conditioning)
        pairs = [(r, c) for r, c in zip(batch, conditionings, strict=True) if isinstance(c, Conditioning)]
        if not pairs:
            return
        alive, rows = [r for r, _ in pairs], [c for _, c in pairs]
        options = alive[0].options
        progress = ChainProgress(pipe.config.temperature)
        generators = [torch.Generator().manual_seed(int(r.options.seed)) for r in alive]
        for row, (request, conditioning) in enumerate(zip(alive, rows, strict=True)):
            request.progress, request.row = progress, row
            request.resolve(Prepared(request.pixels, request.x, conditioning))
        error: BaseException | None = None
        try:
            last = time.monotonic()
            for state in pipe.chain(join_rows(rows), options, generators):
                now = time.monotonic()
                notify = state.is_last or now - last >= NOTIFY_S
                progress.add(state, notify)
                last = now if notify else last
                if all(r.cancelled for r in alive):
                    break
        except Exception as err:  # noqa: BLE001 - handed to every caller of this batch
            error = err
        finally:
            progress.finish(error)


def condition_each(model: DiffMIC, images: list[torch.Tensor]) -> list[Conditioning | BaseException]:
    """Each image's conditioning (a batch of one): the DCG over all of them at once, or, when that fails,
    over each alone, so that only an image the model cannot take fails."""
    try:
        batched = model.condition(torch.cat(images))
        return [image_row(batched, i) for i in range(len(images))]
    except Exception:  # noqa: BLE001 - retried image by image below
        pass
    out: list[Conditioning | BaseException] = []
    for x in images:
        try:
            out.append(model.condition(x))
        except Exception as err:  # noqa: BLE001 - this request's own failure
            out.append(err)
    return out


_shared: Batcher | None = None
_shared_lock = threading.Lock()


def shared_batcher() -> Batcher:
    """The process's default batcher (for pipelines built without one)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Batcher()
        return _shared


class BatchedPipeline(DiffMICPipeline):
    """A ``DiffMICPipeline`` whose ``run`` and ``__call__`` go through a ``Batcher``: the same results,
    computed together with other callers' requests for the same model and options.

    A ``Prepared`` image, or a sampler without affine steps (the generic loop), runs alone.
    """

    def __init__(self, model: DiffMIC, batcher: Batcher | None = None):
        super().__init__(model)
        self.batcher = batcher or shared_batcher()

    def batchable(self, options: SamplingOptions) -> bool:
        """Can this request's chain run in a batched head?"""
        return sampler_class(options.sampler).affine and callable(getattr(self.model.denoiser, "fold", None))

    def submit(self, image: ImageLike, options: SamplingOptions) -> BatchRequest:
        """Decode and normalise the image here (a bad one fails now, alone), then queue it."""
        key = (self, options.with_(seed=0))
        with self.batcher.incoming(key), torch.inference_mode():
            x, pixels = self.preprocess(image)
        return self.batcher.submit(BatchRequest(self, options, x, pixels[0]))

    def run(
        self, image: ImageLike | Prepared, options: SamplingOptions | None = None, *, explain: bool = False
    ) -> Iterator[Prepared | DenoiseState | DiffMICOutput]:
        """As ``DiffMICPipeline.run``: the Prepared image, the state of every step, the DiffMICOutput."""
        options = options or SamplingOptions()
        if isinstance(image, Prepared) or not self.batchable(options):
            yield from super().run(image, options, explain=explain)
            return
        start = time.perf_counter()
        request = self.submit(image, options)
        try:
            prepared = request.prepared()
            yield prepared
            trajectory = self.trajectory(prepared, options)
            state = None
            for state in recorded(request.states(), trajectory):
                yield state
            assert state is not None
        finally:
            request.cancel()
        yield self.result(prepared, state, trajectory, options, time.perf_counter() - start, explain=explain)

    def __call__(
        self, image: ImageLike | Prepared, options: SamplingOptions | None = None, *, explain: bool = False
    ) -> DiffMICOutput:
        """Classify one image, in a batch with whatever arrives with it (see ``run``)."""
        options = options or SamplingOptions()
        if isinstance(image, Prepared) or not self.batchable(options):
            return super().__call__(image, options, explain=explain)
        start = time.perf_counter()
        request = self.submit(image, options)
        try:
            prepared = request.prepared()
            state, probs = request.outcome()
        finally:
            request.cancel()
        trajectory = self.trajectory(prepared, options, total=state.total)  # filled at once, not step by step
        trajectory.t[:] = request.progress.timesteps if request.progress is not None else []
        trajectory.probs[:] = probs
        trajectory.steps_done = state.total
        return self.result(prepared, state, trajectory, options, time.perf_counter() - start, explain=explain)
