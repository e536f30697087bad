"""Faithful resume: a run stopped mid-stage and continued ends each stage in exactly the state of the same
run uninterrupted — weights, EMA, optimiser, best-EMA weights, TrainState (history with its epoch-mean
losses included) and the augmentation/noise generator.

One uninterrupted reference run writes a checkpoint after every step (``checkpoint_minutes=0``) and keeps
copies of some; a run killed right after such a write continues from that copy. The reference records
each stage's state on entering ``_finish_stage`` and the resumed runs stop there to be compared.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch

from diffmic.data.datasets import Splits
from diffmic.train import CHECKPOINT_NAME, TrainConfig, Trainer
from tests.helpers import tiny_config
from tests.test_train import FAST_VAL, colour_dataset

# (stage, epoch, batch) of the checkpoints a run is killed after: mid-epoch (with a validated epoch
# before it), after an epoch's last batch but before its end (validation, epoch-mean loss), and after
# the epoch's end. The global stage's are fast; the later stages' need the run up to them.
POINTS = ((1, 1), (0, 3), (1, 0))
KILLS = [
    pytest.param(
        (stage, *point),
        marks=[pytest.mark.slow] if stage != "global" else [],
        id=f"{stage}-epoch{point[0]}-batch{point[1]}",
    )
    for stage in ("global", "local", "diffusion")
    for point in POINTS
]


class Stop(Exception):
    """Raised to stop a run at a stage's end."""


def small_splits() -> Splits:
    return Splits(colour_dataset(24, 0), colour_dataset(9, 1), None, ["c0", "c1", "c2"], False)


def train_config(out: Path, **overrides) -> TrainConfig:
    values = dict(
        out_dir=str(out),
        global_epochs=2,
        local_epochs=2,
        diffusion_epochs=4,
        val_every=2,
        cache_views=2,
        batch_size=8,  # 3 batches of 8 per epoch
        diffusion_batch_size=8,
        global_lr=3e-3,
        local_lr=3e-3,
        lr=3e-3,
        augment=True,  # the generator drives augmentation, and the diffusion stage's (t, eps)
        val_options=FAST_VAL,
        patience=100,
        checkpoint_minutes=0.0,  # a checkpoint after every step
    )
    values.update(overrides)
    return TrainConfig(**values)


def snapshot(trainer: Trainer) -> dict:
    """Everything a continued run depends on (wall-clock times aside)."""
    state = asdict(trainer.state)
    state.pop("train_seconds")
    state["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in state["history"]]
    return copy.deepcopy(
        {
            "model": trainer.model.state_dict(),
            "ema": trainer.ema.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "best": trainer.best,
            "state": state,
            "generator": trainer.generator.get_state(),
        }
    )


def assert_same(a, b, where: str = "") -> None:
    """Bit-equal tensors, equal numbers (nan equal to nan), recursively."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a} != {b}"


class Recorder(Trainer):
    """A Trainer that snapshots each stage's end, keeps copies of chosen checkpoints, and can stop at a
    stage's end (``stop_at``) or after a number of steps as if out of time (``steps_left``)."""

    def __init__(self, *args, keep: dict[tuple, Path] | None = None, stop_at: str | None = None, **kw):
        super().__init__(*args, **kw)
        self.keep, self.stop_at = keep or {}, stop_at
        self.ends: dict[str, dict] = {}
        self.steps_left: int | None = None
        self.losses: list[tuple[str, int, float]] = []  # (stage, epoch, loss) of every step

    def save_checkpoint(self) -> None:
        super().save_checkpoint()
        where = (self.state.stage, self.state.epoch, self.state.batch)
        if where in self.keep:
            shutil.copy(self.checkpoint_path, self.keep[where])

    def _step(self, stage, idx):
        if self.steps_left is not None:
            self.steps_left -= 1
        loss = super()._step(stage, idx)
        self.losses.append((stage, self.state.epoch, loss))
        return loss

    def _out_of_time(self) -> bool:
        return self.steps_left == 0 or super()._out_of_time()

    def _finish_stage(self, stage: str) -> None:
        self.ends[stage] = snapshot(self)
        if stage == self.stop_at:
            raise Stop
        super()._finish_stage(stage)


@dataclass
class Reference:
    """The uninterrupted run: its state at each stage's end, copies of the checkpoints of KILLS (and of the
    local stage's last), its conditioning cache and its steps' losses."""

    ends: dict[str, dict]
    kept: dict[tuple, Path]
    cache: Path
    losses: list[tuple[str, int, float]]


_references: dict[str, Reference] = {}


def reference(last_stage: str, tmp_path_factory) -> Reference:
    """The uninterrupted run up to ``last_stage``'s end (made once per session)."""
    if last_stage not in _references:
        root = tmp_path_factory.mktemp(f"reference-{last_stage}")
        stages = ("global", "local", "diffusion")[: ("global", "local", "diffusion").index(last_stage) + 1]
        wanted = [(s, *p) for s in stages for p in POINTS] + [("local", 2, 0)] * (last_stage == "diffusion")
        kept = {k: root / f"{k[0]}-{k[1]}-{k[2]}.pt" for k in wanted}
        trainer = Recorder(tiny_config(3), train_config(root / "run"), small_splits(), keep=kept)
        trainer.stop_at = last_stage
        with pytest.raises(Stop):
            trainer.run()
        assert all(p.is_file() for p in kept.values()), [k for k, p in kept.items() if not p.is_file()]
        cache = root / "run" / "conditioning.npz"
        _references[last_stage] = Reference(trainer.ends, kept, cache, trainer.losses)
    return _references[last_stage]


def resumed_from(checkpoint: Path, out: Path, stop_at: str, cache: Path | None = None) -> Recorder:
    """A run continuing from a copy of ``checkpoint`` (and of the conditioning ``cache`` it had written)."""
    out.mkdir()
    shutil.copy(checkpoint, out / CHECKPOINT_NAME)
    if cache is not None:
        shutil.copy(cache, out / cache.name)
    trainer = Recorder(
        tiny_config(3), train_config(out, checkpoint_minutes=60), small_splits(), stop_at=stop_at
    )
    assert trainer.resume()
    return trainer


@pytest.mark.parametrize("kill", KILLS)
def test_a_run_killed_after_a_checkpoint_ends_the_stage_as_the_uninterrupted_run(
    kill, tmp_path, tmp_path_factory
):
    stage = kill[0]
    ref = reference("global" if stage == "global" else "diffusion", tmp_path_factory)
    cache = ref.cache if stage == "diffusion" else None
    trainer = resumed_from(ref.kept[kill], tmp_path / "run", stop_at=stage, cache=cache)
    assert (trainer.state.stage, trainer.state.epoch, trainer.state.batch) == kill
    with pytest.raises(Stop):
        trainer.run()
    assert_same(trainer.ends[stage], ref.ends[stage], stage)


def test_a_global_stage_out_of_time_mid_epoch_resumes_to_the_same_end(tmp_path, tmp_path_factory):
    """The graceful stop (``max_minutes``) after a step, then a new process continuing in the same folder."""
    ref = reference("global", tmp_path_factory)
    first = Recorder(tiny_config(3), train_config(tmp_path, checkpoint_minutes=60), small_splits())
    first.steps_left = 4  # the second epoch's first batch
    assert not first.run()
    saved = json.loads(torch.load(first.checkpoint_path, weights_only=True)["state"])
    assert (saved["stage"], saved["epoch"], saved["batch"], saved["steps"]) == ("global", 1, 1, 4)
    second = Recorder(tiny_config(3), train_config(tmp_path), small_splits(), stop_at="global")
    assert second.resume()
    with pytest.raises(Stop):
        second.run()
    assert_same(second.ends["global"], ref.ends["global"], "global")


@pytest.mark.slow
def test_a_cached_stage_out_of_time_resumes_to_the_same_end(tmp_path, tmp_path_factory):
    """From the local stage's last checkpoint (no cache yet), out of time mid-epoch of the cached diffusion
    stage, then continued: the stage boundary, the cache's build and reload and the stop on one path."""
    ref = reference("diffusion", tmp_path_factory)
    first = resumed_from(ref.kept[("local", 2, 0)], tmp_path / "run", stop_at="diffusion")
    first.steps_left = 5  # the second diffusion epoch's second batch
    assert not first.run()
    saved = json.loads(torch.load(first.checkpoint_path, weights_only=True)["state"])
    assert (saved["stage"], saved["epoch"], saved["batch"]) == ("diffusion", 1, 2)
    second = Recorder(tiny_config(3), train_config(tmp_path / "run"), small_splits(), stop_at="diffusion")
    assert second.resume()
    with pytest.raises(Stop):
        second.run()
    assert_same(second.ends["diffusion"], ref.ends["diffusion"], "diffusion")


def test_an_epoch_s_logged_loss_is_the_mean_of_its_steps(tmp_path_factory):
    """What a resumed epoch must reproduce: the history's loss of each epoch is its own steps' mean."""
    ref = reference("global", tmp_path_factory)
    logged = [h for h in ref.ends["global"]["state"]["history"] if h["stage"] == "global"]
    assert [h["epoch"] for h in logged] == [1, 2]
    for h in logged:
        steps = [loss for stage, epoch, loss in ref.losses if stage == "global" and epoch == h["epoch"] - 1]
        assert len(steps) == 3 and h["loss"] == pytest.approx(sum(steps) / 3, rel=1e-12)
