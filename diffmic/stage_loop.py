"""The loop every training stage runs: DiffMIC's four stages (``train.Trainer``) and the plain-CNN
baseline (``baseline.BaselineTrainer``, DiffMIC's global stage on a network of its own).

A stage trains some modules with AdamW and keeps an EMA of them; it runs epochs of batches until its
epoch cap or until ``patience`` validations have not improved its score; validation uses the EMA weights,
the best EMA weights are kept and restored at the stage's end. A checkpoint (``checkpoint.Checkpointing``)
is written every few minutes and at every epoch's end; ``max_minutes`` stops the run after one.

A subclass says what a stage is: ``_stage_modules``, ``_lr``, ``_epochs``, ``_loss`` and ``_validate``
of a stage, and what happens at its end (``_finish_stage``); optionally its batch size, how often it is
validated (``_validation_every``) and what it needs first (``_begin_stage``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoint import Checkpointing
from .data.datasets import Splits, batch_of
from .distributed import Distributed, epoch_batches
from .ema import EMA
from .model import resolve_device
from .precision import training_dtype
from .train_config import STAGES, TrainConfig, TrainState
from .transforms import training_batch


class StageLoop(Checkpointing):
    """Optimiser, EMA, best weights, TrainState and the epoch loop of one training run."""

    tc: TrainConfig
    splits: Splits
    cfg: Any  # the model's config (its mean and std normalise the batches)
    device: torch.device
    dtype: torch.dtype  # autocast dtype of the image stages
    modules: nn.ModuleList  # what the current stage trains
    params: list[nn.Parameter]
    started: float

    def _start(self, train_config: TrainConfig, splits: Splits, build_model: Callable[[], nn.Module]) -> None:
        """The shared set-up: process group and device, the seeded model, autocast dtype, generator, state."""
        self.tc, self.splits = train_config, splits
        self.dist = Distributed()
        self.device = self.dist.device(resolve_device(train_config.device))
        self.out = Path(train_config.out_dir)
        torch.manual_seed(train_config.seed)
        self.model = build_model().to(self.device)
        self.dtype = training_dtype(train_config.precision, self.device)
        if self.dtype != torch.float32:
            self.model.to(memory_format=torch.channels_last)
        self.generator = torch.Generator().manual_seed(train_config.seed + 1000 * self.dist.rank)
        self.state = TrainState()
        self.best = None  # the stage modules' EMA weights at the best validation
        self.started = self._tick = self.last_checkpoint = time.monotonic()

    # ------------------------------------------------------------ what a stage is (the subclass says)
    def _stage_modules(self, stage: str) -> nn.ModuleList:
        raise NotImplementedError

    def _lr(self, stage: str) -> float:
        raise NotImplementedError

    def _epochs(self, stage: str) -> int:
        raise NotImplementedError

    def _loss(self, stage: str, idx: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def _validate(self, stage: str) -> dict[str, float]:
        raise NotImplementedError

    def _finish_stage(self, stage: str) -> None:
        raise NotImplementedError

    def _batch_size(self, stage: str) -> int:
        return self.tc.batch_size

    def _validation_every(self, stage: str) -> int:
        return 1

    def _begin_stage(self, stage: str) -> None:
        """Anything a stage needs before its first batch (nothing by default)."""

    # ------------------------------------------------------------ set-up per stage
    def _new_stage(self, stage: str) -> None:
        self.modules = self._stage_modules(stage)
        self.model.requires_grad_(False)  # no gradients are computed for the frozen parts
        self.modules.requires_grad_(True)
        self.params = list(self.modules.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=self._lr(stage), weight_decay=self.tc.weight_decay)
        self.ema = EMA(self.modules, self.tc.ema_decay)

    # ------------------------------------------------------------ one optimisation step
    def _images(self, idx: np.ndarray, pool: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch (augmented, channels-last; average-pooled by ``pool``) and its labels."""
        pixels, labels = batch_of(self.splits.train, idx)
        x = training_batch(pixels, self.cfg, self.generator if self.tc.augment else None, pool)
        return x.to(self.device), labels.to(self.device)

    def _step(self, stage: str, idx: np.ndarray) -> float:
        self.model.eval()  # frozen parts keep their batch-norm statistics
        self.modules.train()
        loss = self._loss(stage, idx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.params)
        if self.tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.tc.grad_clip)
        self.optimizer.step()
        self.ema.update(self.modules)
        return loss.item()

    # ------------------------------------------------------------ validation and the best weights
    def _with_ema(self, fn):
        """Run ``fn()`` with the EMA weights in the stage modules, then restore the live ones."""
        live = copy.deepcopy(self.modules.state_dict())
        self.ema.copy_to(self.modules)
        try:
            return fn()
        finally:
            self.modules.load_state_dict(live)

    def validate(self, stage: str) -> dict[str, float]:
        """Validation scores of the stage's output with the EMA weights (its ``score`` selects)."""
        return self._with_ema(lambda: self._validate(stage))

    def _keep_if_best(self, scores: dict[str, float]) -> None:
        if scores["score"] <= self.state.best:
            self.state.stale += 1
            return
        self.state.best, self.state.stale = scores["score"], 0
        self.best = {k: v.clone() for k, v in self.ema.shadow.items()}

    def _restore_best(self) -> None:
        """The stage's best EMA weights back in its modules, on every process."""
        if self.best is not None:
            self.modules.load_state_dict(self.best)
        self.dist.sync_module(self.modules)  # only the main process validated and kept the best weights

    # ------------------------------------------------------------ the loop
    def _out_of_time(self) -> bool:
        limit = self.tc.max_minutes
        return limit is not None and time.monotonic() - self.started > 60 * limit

    def _batches(self, stage: str) -> list[np.ndarray]:
        seed = self.tc.seed + 7919 * STAGES.index(stage)
        return epoch_batches(
            len(self.splits.train), self._batch_size(stage), seed, self.state.epoch, self.dist
        )

    def _validates_now(self, stage: str) -> bool:
        every = self._validation_every(stage)
        return (self.state.epoch + 1) % every == 0 or self.state.epoch + 1 == self._epochs(stage)

    def _run_stage(self, stage: str) -> bool:
        """Train one stage to its end (True) or until out of time (False, after a checkpoint is due)."""
        self._begin_stage(stage)
        epochs, limit = self._epochs(stage), self.tc.max_steps_per_stage
        while self.state.epoch < epochs and self.state.stale < self.tc.patience:
            batches = self._batches(stage)
            desc = f"{stage} {self.state.epoch + 1}/{epochs}"
            for idx in tqdm(batches[self.state.batch :], desc=desc, leave=False, disable=not self.dist.main):
                self.state.loss_sum += self._step(stage, idx)
                self.state.batch += 1
                self.state.steps += 1
                if time.monotonic() - self.last_checkpoint > 60 * self.tc.checkpoint_minutes:
                    self.save_checkpoint()
                if self._out_of_time():
                    return False
                if limit and self.state.steps >= limit:
                    break
            self._end_epoch(stage, self.state.loss_sum / self.state.batch if self.state.batch else math.nan)
            if limit and self.state.steps >= limit:
                break
        self._finish_stage(stage)
        return True

    def _end_epoch(self, stage: str, loss: float) -> None:
        if self.dist.main and self._validates_now(stage):
            scores = self.validate(stage)
            self.state.history.append({"stage": stage, "epoch": self.state.epoch + 1, "loss": loss, **scores})
            self._keep_if_best(scores)
            tqdm.write(
                f"{stage} epoch {self.state.epoch + 1}: loss {loss:.4f}  val "
                + " ".join(f"{k} {v:.3f}" for k, v in scores.items() if k != "score")
            )
        self.state.best, self.state.stale = self.dist.share((self.state.best, self.state.stale))
        self.state.epoch += 1
        self.state.batch, self.state.loss_sum = 0, 0.0
        self.save_checkpoint()
