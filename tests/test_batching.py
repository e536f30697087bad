"""Batched serving (``diffmic.batching``): requests run together give each caller what it would get alone.

The batches are made deterministic by holding the batcher's ``incoming`` gate open (as if one more request
of the same kind were still being decoded) until every request is queued; each test then checks which
batches actually ran.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from diffmic import batching
from diffmic import pipeline as pipeline_module
from diffmic.batch_request import BatchRequest
from diffmic.batching import BatchedPipeline, Batcher
from diffmic.chain import DenoiseState
from diffmic.imageio import ImageLoadError
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from diffmic.pipeline_outputs import DiffMICOutput, Prepared
from tests.helpers import random_image, tiny_model

TOL = 1e-5


@pytest.fixture
def batcher():
    b = Batcher(max_batch=8, max_wait_s=10.0, workers=1)
    yield b
    b.close()


@pytest.fixture(scope="module")
def model():
    return tiny_model(num_classes=3, seed=0)


def recorded_batches(monkeypatch) -> list[list[BatchRequest]]:
    """Every batch the workers run, in order."""
    seen: list[list[BatchRequest]] = []
    run = batching.run_batch

    def spy(batch):
        seen.append(list(batch))
        run(batch)

    monkeypatch.setattr(batching, "run_batch", spy)
    return seen


def together(batcher: Batcher, key, calls: list[Callable[[], object]]) -> list[object]:
    """Run ``calls`` in threads, all queued before any batch starts; their results or exceptions."""
    out: list[object] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as err:  # noqa: BLE001 - returned for the test to inspect
            out[i] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    with batcher.incoming(key):
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while batcher.waiting() + sum(o is not None for o in out) < len(calls):
            assert time.monotonic() < deadline, "the requests were not queued"
            time.sleep(0.005)
    for t in threads:
        t.join(timeout=60)
    return out


def assert_same_answer(got: DiffMICOutput, ref: DiffMICOutput) -> None:
    assert got.label == ref.label and got.steps == ref.steps and got.options == ref.options
    np.testing.assert_allclose(got.sample_probs, ref.sample_probs, atol=TOL)
    np.testing.assert_allclose(got.trajectory.probs, ref.trajectory.probs, atol=TOL)
    np.testing.assert_array_equal(got.trajectory.t, ref.trajectory.t)
    np.testing.assert_allclose(got.saliency, ref.saliency, atol=TOL)
    np.testing.assert_array_equal(got.rois.boxes, ref.rois.boxes)
    np.testing.assert_array_equal(got.pixels, ref.pixels)
    for name in ("global", "local", "fused"):
        np.testing.assert_allclose(list(got.prior[name].values()), list(ref.prior[name].values()), atol=TOL)
    assert got.ood["flagged"] == ref.ood["flagged"]
    got_json, ref_json = got.to_json(), ref.to_json()
    got_json.pop("seconds"), ref_json.pop("seconds")
    assert (
        got_json.keys() == ref_json.keys()
        and got_json["uncertainty"].keys() == ref_json["uncertainty"].keys()
    )


def test_three_concurrent_requests_equal_their_solo_runs(model, batcher, monkeypatch):
    batches = recorded_batches(monkeypatch)
    pipe, solo = BatchedPipeline(model, batcher), DiffMICPipeline(model)
    images = [random_image(80 + 8 * i, seed=i) for i in range(3)]
    options = [SamplingOptions(sampler="ddpm", samples=4, seed=s) for s in (11, 22, 33)]
    key = (pipe, options[0].with_(seed=0))
    results = together(batcher, key, [lambda i=i: pipe(images[i], options[i]) for i in range(3)])
    assert [len(b) for b in batches] == [3]  # one batch: one DCG pass, one chain
    for image, opts, got in zip(images, options, results, strict=True):
        assert isinstance(got, DiffMICOutput), got
        assert_same_answer(got, solo(image, opts))
    # each caller's own seed: the three answers' chains differ
    assert not np.allclose(results[0].sample_probs, results[1].sample_probs)


def test_streamed_runs_get_their_own_frames_and_stop_alone(model, batcher, monkeypatch):
    batches = recorded_batches(monkeypatch)
    pipe, solo = BatchedPipeline(model, batcher), DiffMICPipeline(model)
    images = [random_image(seed=10 + i) for i in range(3)]
    options = [SamplingOptions(sampler="ddim", steps=40, samples=3, seed=s) for s in (5, 6, 7)]
    key = (pipe, options[0].with_(seed=0))

    def stream(i: int, stop_after: int | None = None) -> list:
        items = []
        for item in pipe.run(images[i], options[i]):
            items.append(item.sample.clone() if isinstance(item, DenoiseState) else item)
            if stop_after is not None and len(items) > stop_after:
                break  # Stop: the caller leaves mid-run
        return items

    runs = together(batcher, key, [lambda: stream(0), lambda: stream(1, stop_after=5), lambda: stream(2)])
    assert [len(b) for b in batches] == [3]
    for i in (0, 2):
        ref = list(solo.run(images[i], options[i]))
        got = runs[i]
        assert isinstance(got[0], Prepared) and isinstance(got[-1], DiffMICOutput)
        assert len(got) == len(ref) == 40 + 2
        for mine, theirs in zip(got[1:-1], ref[1:-1], strict=True):
            torch.testing.assert_close(mine, theirs.sample, atol=TOL, rtol=0)
        assert_same_answer(got[-1], ref[-1])
    assert len(runs[1]) == 6 and not any(isinstance(item, DiffMICOutput) for item in runs[1])


def test_everyone_leaving_stops_the_chain(model, batcher, monkeypatch):
    progress: list = []
    run, chain = batching.run_batch, pipeline_module.lean_chain

    def slowed(*args, **kwargs):
        for state in chain(*args, **kwargs):
            time.sleep(0.01)
            yield state

    monkeypatch.setattr(pipeline_module, "lean_chain", slowed)
    monkeypatch.setattr(batching, "run_batch", lambda batch: (run(batch), progress.append(batch[0].progress)))
    pipe = BatchedPipeline(model, batcher)
    stream = pipe.run(random_image(seed=3), SamplingOptions(sampler="ddpm", samples=2, seed=1))
    for item in stream:
        if isinstance(item, DenoiseState) and item.index == 2:
            break
    stream.close()
    deadline = time.monotonic() + 30
    while not progress:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert progress[0].finished and len(progress[0].samples) < progress[0].total


def test_other_models_and_options_are_never_mixed(model, batcher, monkeypatch):
    batches = recorded_batches(monkeypatch)
    other = tiny_model(num_classes=3, seed=1)
    pipe_a, pipe_b = BatchedPipeline(model, batcher), BatchedPipeline(other, batcher)
    base = SamplingOptions(sampler="ddim", steps=20, samples=2, seed=0)
    requests = [
        (pipe_a, base.with_(seed=1)),
        (pipe_b, base.with_(seed=2)),  # another model
        (pipe_a, base.with_(seed=3, steps=10)),  # other steps
        (pipe_a, base.with_(seed=4, prior="global")),  # another prior
        (pipe_a, base.with_(seed=5, samples=3)),  # another number of chains
        (pipe_a, base.with_(seed=6)),  # the first's kind, another seed: joins it
    ]
    images = [random_image(seed=20 + i) for i in range(len(requests))]
    key = (pipe_a, base)
    results = together(
        batcher, key, [lambda i=i: requests[i][0](images[i], requests[i][1]) for i in range(len(requests))]
    )
    kinds = [{(id(r.pipe), r.options.with_(seed=0)) for r in b} for b in batches]
    assert all(len(kind) == 1 for kind in kinds), kinds
    assert sorted(len(b) for b in batches) == [1, 1, 1, 1, 2]
    assert {r.options.seed for b in batches if len(b) == 2 for r in b} == {1, 6}
    for (pipe, opts), image, got in zip(requests, images, results, strict=True):
        assert isinstance(got, DiffMICOutput), got
        assert_same_answer(got, DiffMICPipeline(pipe.model)(image, opts))


def test_a_bad_image_fails_alone(model, batcher, monkeypatch):
    batches = recorded_batches(monkeypatch)
    pipe, solo = BatchedPipeline(model, batcher), DiffMICPipeline(model)
    options = SamplingOptions(sampler="ddim", steps=20, samples=2, seed=9)
    images: list = [random_image(seed=30), b"this is not an image", random_image(seed=31)]
    key = (pipe, options.with_(seed=0))
    results = together(batcher, key, [lambda i=i: pipe(images[i], options) for i in range(3)])
    assert isinstance(results[1], ImageLoadError) and "not a recognised image" in str(results[1])
    assert [len(b) for b in batches] == [2]  # the bad file never joined the batch
    for i in (0, 2):
        assert_same_answer(results[i], solo(images[i], options))


def test_an_image_the_batched_networks_refuse_fails_alone(model, batcher, monkeypatch):
    """When the DCG fails on the batch, each image is retried alone: only the one it cannot take fails."""
    pipe, solo = BatchedPipeline(model, batcher), DiffMICPipeline(model)
    condition = type(model).condition

    def picky(self, x):
        if bool((x.flatten(2).std(2).amax(1) < 1e-6).any()):  # a blank image
            raise RuntimeError("cannot condition a blank image")
        return condition(self, x)

    monkeypatch.setattr(type(model), "condition", picky)
    options = SamplingOptions(sampler="ddim", steps=20, samples=2, seed=4)
    images = [random_image(seed=40), np.full((80, 80, 3), 100, np.uint8), random_image(seed=41)]
    key = (pipe, options.with_(seed=0))
    results = together(batcher, key, [lambda i=i: pipe(images[i], options) for i in range(3)])
    assert isinstance(results[1], RuntimeError) and "blank" in str(results[1])
    for i in (0, 2):
        assert_same_answer(results[i], solo(images[i], options))


def test_a_lone_request_does_not_wait_and_unbatchable_runs_go_alone(model, monkeypatch):
    batcher = Batcher(max_batch=4, max_wait_s=60.0, workers=1)  # a wait that would fail the test
    try:
        pipe = BatchedPipeline(model, batcher)
        options = SamplingOptions(sampler="ddim", steps=10, samples=2, seed=1)
        image = random_image(seed=50)
        assert_same_answer(pipe(image, options), DiffMICPipeline(model)(image, options))
        assert batcher.batch_sizes == [1]
        prepared = pipe.prepare(random_image(seed=51))
        assert pipe(prepared, options).label in model.config.class_names  # a Prepared image: alone
        monkeypatch.setattr(batching, "sampler_class", lambda name: type("NotAffine", (), {"affine": False}))
        assert not pipe.batchable(options)
        pipe(random_image(seed=52), options)
        assert batcher.batch_sizes == [1]  # neither went through the batcher
    finally:
        batcher.close()


def test_a_closed_batcher_refuses_new_requests(model):
    batcher = Batcher(workers=1)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        BatchedPipeline(model, batcher)(random_image(seed=60), SamplingOptions(sampler="ddim", steps=5))
    with pytest.raises(ValueError):
        Batcher(max_batch=0)


def test_a_batch_on_the_fake_gpu_gives_the_cpu_answers(model):
    """The batched DCG and chain on a (fake, ``tests/fake_cuda.py``) CUDA device: every tensor on one
    device, the numbers those of solo runs on the CPU. The batch runs in this thread (the fake device is
    a mode of the thread that enters it)."""
    import copy

    from tests.fake_cuda import CUDA, FakeCuda

    options = [SamplingOptions(sampler="ddpm", samples=3, seed=s) for s in (1, 2)]
    images = [random_image(seed=70), random_image(seed=71)]
    expected = [DiffMICPipeline(model)(image, opts) for image, opts in zip(images, options, strict=True)]
    with FakeCuda():
        pipe = BatchedPipeline(copy.deepcopy(model).to(CUDA), Batcher(workers=1))
        requests = []
        for image, opts in zip(images, options, strict=True):
            x, pixels = pipe.preprocess(image)
            requests.append(BatchRequest(pipe, opts, x, pixels[0]))
        batching.run_batch(requests)
        for request, ref in zip(requests, expected, strict=True):
            state, probs = request.outcome()
            assert request.prepared().x.device == state.sample.device == CUDA
            np.testing.assert_allclose(state.probs[0].cpu().numpy(), ref.sample_probs, atol=TOL)
            np.testing.assert_allclose(probs, ref.trajectory.probs, atol=TOL)
