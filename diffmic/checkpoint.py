"""The resumable checkpoint of a training run (``OUT/checkpoint.pt``), for DiffMIC's trainer and the
plain-CNN baseline alike.

The payload is a dict of tensors and strings, read back with ``weights_only=True``:

- ``model``: the whole model's state dict (every parameter and buffer, under the model's own names);
- ``ema``, ``optimizer``: the current stage's EMA shadow and AdamW state;
- ``state``: the ``TrainState`` as JSON; ``config``: the user's model settings as JSON (a run resumes only
  with the same ones; the values fitted on validation data are not compared);
- ``best``: the stage's best EMA weights so far ({} for none); ``generator``: the augmentation/noise
  generator's state.

It is written atomically (a temporary file, then a rename) by the main process only.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .distributed import Distributed
from .ema import EMA
from .train_config import CHECKPOINT_NAME, TrainState


class Checkpointing:
    """Save and resume for a training loop (``stage_loop.StageLoop``).

    Reads the loop's ``out``, ``dist``, ``cfg`` (with ``to_dict()``), ``model``, ``ema``, ``optimizer``,
    ``state``, ``best`` and ``generator``; calls ``_new_stage`` (a fresh optimiser and EMA for the
    resumed stage) and ``_apply_fitted`` (values fitted so far back into the model's config).
    """

    # config fields a resumed run may differ in (set by training itself, or fitted after it)
    unchecked_fields: ClassVar[tuple[str, ...]] = ()

    out: Path
    dist: Distributed
    cfg: Any
    model: nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    state: TrainState
    best: dict[str, torch.Tensor] | None
    generator: torch.Generator
    _tick: float
    last_checkpoint: float

    @property
    def checkpoint_path(self) -> Path:
        """Where the resumable checkpoint lives."""
        return self.out / CHECKPOINT_NAME

    def _user_config(self) -> dict:
        """The model settings a checkpoint must match to be resumed."""
        return {k: v for k, v in self.cfg.to_dict().items() if k not in self.unchecked_fields}

    def save_checkpoint(self) -> None:
        """Write weights, EMA, optimiser and TrainState atomically (main process only)."""
        if not self.dist.main:
            return
        now = time.monotonic()
        self.state.train_seconds += now - self._tick
        self._tick = now
        self.out.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": json.dumps(asdict(self.state)),
            "config": json.dumps(self._user_config()),
            "best": self.best or {},
            "generator": self.generator.get_state(),
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(self.checkpoint_path)
        self.last_checkpoint = time.monotonic()

    def resume(self) -> bool:
        """Continue from the checkpoint in out_dir if there is one; True when resumed."""
        if not self.checkpoint_path.is_file():
            return False
        payload = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        skip = self.unchecked_fields
        saved = {k: v for k, v in json.loads(payload["config"]).items() if k not in skip}
        if saved != self._user_config():
            raise ValueError(
                f"{self.checkpoint_path} was written with another model config; "
                "use a new --out folder or the same settings"
            )
        self.state = TrainState(**json.loads(payload["state"]))
        self._apply_fitted()
        self.model.load_state_dict(payload["model"])
        self._new_stage(self.state.stage)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.ema.load_state_dict(payload["ema"])
        self.best = payload["best"] or None
        self.generator.set_state(payload["generator"])
        return True

    def _apply_fitted(self) -> None:
        """Put the values fitted so far (``TrainState.fitted``) into the model's config (none here)."""

    def _new_stage(self, stage: str) -> None:
        raise NotImplementedError
