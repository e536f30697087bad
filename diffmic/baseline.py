"""A plain CNN classifier to compare DiffMIC with: the global network alone (its backbone, stride and
pooled linear head), trained with the same data, augmentation, epoch cap, early stopping and
validation-based selection as DiffMIC's global stage: by the same loop (``stage_loop.StageLoop``, with its
checkpoint and resume), on the same batches. Saved like a DiffMIC (``config.json`` + ``model.safetensors``).

    python -m diffmic.baseline --task fundus --out runs/cnn_fundus          # train one
    python -m diffmic.baseline --like runs/fundus --out runs/cnn_fundus     # with a DiffMIC run's recipe
    python -m diffmic.baseline --like runs/placenta --network encoder --out runs/cnn_placenta  # its encoder's
    python -m diffmic.baseline --from-model runs/fundus --out runs/cnn_fundus  # export DCG stage 1's

A fair baseline is DiffMIC's strongest single network trained on its own: ``--like`` matches the global
network, ``--network encoder`` the denoiser's own encoder (its backbone and view; the global stage's epochs
plus the encoder stage's, since the encoder starts from the trained global network). DiffMIC's stage 1
trains the global network by exactly the global recipe, so ``--from-model`` gives that baseline without
training it twice: the plain CNN is then the global prior as a model of its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import hub
from .baseline_model import CNNClassifier, CNNConfig, predict_probs
from .config import DiffMICConfig
from .data.datasets import Splits, synthetic_splits
from .losses import global_loss
from .metrics import macro_f1
from .model import DiffMIC
from .precision import autocast
from .stage_loop import StageLoop
from .tasks import TASKS, generated_tasks
from .train_config import STAGES, TrainConfig, TrainState, log_command

STAGE = STAGES[0]  # the baseline is DiffMIC's global stage
# the settings of TrainConfig that shape the global stage: "the same recipe" means these are equal
RECIPE_FIELDS = (
    "global_epochs",
    "patience",
    "batch_size",
    "global_lr",
    "weight_decay",
    "ema_decay",
    "grad_clip",
    "augment",
    "precision",
    "seed",
)


class BaselineTrainer(StageLoop):
    """DiffMIC's global stage run on the plain CNN: the same loop (``stage_loop.StageLoop``: AdamW, EMA,
    patience, validation on the EMA weights, the best kept, checkpoint and resume), the same batches
    (the global view, pooled before augmenting) and loss; validation by the CNN's own macro-F1."""

    def __init__(self, config: CNNConfig, splits: Splits, train_config: TrainConfig):
        self.cfg = config
        self._start(train_config, splits, lambda: CNNClassifier(config))
        self._new_stage(STAGE)

    def _stage_modules(self, stage: str) -> nn.ModuleList:
        return nn.ModuleList([self.model])

    def _lr(self, stage: str) -> float:
        return self.tc.global_lr

    def _epochs(self, stage: str) -> int:
        return self.tc.global_epochs

    def _loss(self, stage: str, idx: np.ndarray) -> torch.Tensor:
        view, y = self._images(idx, pool=self.cfg.input_scale)
        with autocast(self.device, self.dtype):
            return global_loss(self.model.forward_view(view), y)

    def _validate(self, stage: str) -> dict[str, float]:
        classes = len(self.cfg.class_names)
        f1 = macro_f1(self.splits.val.labels, predict_probs(self.model, self.splits.val).argmax(-1), classes)
        return {"macro_f1": f1, "score": f1}

    def _finish_stage(self, stage: str) -> None:
        """The best EMA weights saved in ``out`` with the log (the state and the recipe trained by)."""
        self._restore_best()
        self.model.save_pretrained(self.out)
        log = {"recipe": recipe(self.tc, self.splits), **dataclasses.asdict(self.state)}
        (self.out / "train_log.json").write_text(json.dumps(log, indent=2))

    def run(self) -> TrainState:
        """Train (resuming from ``out/checkpoint.pt``) to the epoch cap or patience; the state at the end."""
        self.resume()
        self._run_stage(STAGE)
        self.save_checkpoint()
        return self.state


def train_cnn(config: CNNConfig, splits: Splits, out: Path, tc: TrainConfig) -> TrainState:
    """Train with the recipe of DiffMIC's global stage (epoch cap, patience, lr, augmentation, EMA), in
    ``out``: the best EMA weights (``config.json``, ``model.safetensors``), ``train_log.json`` and a
    checkpoint that a larger epoch cap continues."""
    return BaselineTrainer(config, splits, dataclasses.replace(tc, out_dir=str(out))).run()


def recipe(tc: TrainConfig, splits: Splits) -> dict:
    """What a global-stage training was: its RECIPE_FIELDS and how many images it trained and validated on."""
    return {
        **{k: getattr(tc, k) for k in RECIPE_FIELDS},
        "data": {"train": len(splits.train), "validation": len(splits.val)},
    }


def recipe_of_run(run: str | Path, network: str = "global") -> tuple[CNNConfig, TrainConfig, int]:
    """The baseline a finished DiffMIC run implies: the config of its global network (or of its encoder), its
    training settings of the global stage (RECIPE_FIELDS; the rest default) and its number of generated
    images (train + validation). The encoder, started from the trained global network, had the global stage's
    epochs and then its own: the baseline like it gets their sum as its cap."""
    run = Path(run)
    try:
        cfg = DiffMICConfig.load(run / hub.CONFIG_NAME)
        log = json.loads((run / "train_log.json").read_text())
        settings, data = log["train_config"], log["data"]
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise hub.ModelLoadError(
            f"{run} is not a finished DiffMIC run with its data sizes logged ({err})"
        ) from err
    tc = TrainConfig(**{k: settings[k] for k in RECIPE_FIELDS if k in settings})
    if network == "encoder":
        tc = dataclasses.replace(tc, global_epochs=tc.global_epochs + int(settings.get("encoder_epochs", 0)))
    try:
        config = CNNConfig.like(cfg, network)
    except ValueError as err:
        raise hub.ModelLoadError(f"{run}: {err}") from err
    return config, tc, int(data["train"]) + int(data["validation"])


def export_global_network(model_folder: str | Path, out: Path) -> CNNClassifier:
    """Save a trained DiffMIC's global network as the baseline (weights + config + a log saying so)."""
    cnn = CNNClassifier.from_global_network(DiffMIC.from_pretrained(model_folder))
    cnn.save_pretrained(out)
    log_path = Path(model_folder) / "train_log.json"
    history = json.loads(log_path.read_text()).get("history", []) if log_path.is_file() else []
    epochs = max((h["epoch"] for h in history if h.get("stage") == "global"), default=None)
    log = {"exported_from": str(model_folder), "epoch": epochs, "train_seconds": None}
    (out / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")
    return cnn


def main(argv: list[str] | None = None) -> None:
    """CLI of the baseline trainer."""
    d, t = DiffMICConfig(), TrainConfig()
    p = argparse.ArgumentParser(description="Train (or export) the plain-CNN baseline.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=generated_tasks(), help="train on a generated task")
    src.add_argument("--from-model", help="export the global network of a trained DiffMIC folder")
    src.add_argument("--like", help="train one by the recipe of a finished DiffMIC run (its global stage)")
    p.add_argument(
        "--network",
        choices=("global", "encoder"),
        default="global",
        help="with --like: the run's network to match (encoder: its backbone and view, both stages' epochs)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--backbone", default=d.global_backbone)
    p.add_argument("--epochs", type=int, default=t.global_epochs)
    p.add_argument("--patience", type=int, default=t.patience)
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--input-scale", type=int, default=d.local_scale)
    p.add_argument("--max-minutes", type=float, help="stop after a checkpoint; run again to resume")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    args = p.parse_args(argv)
    if args.from_model:
        export_global_network(args.from_model, Path(args.out))
        return
    if args.like:
        config, tc, train_size = recipe_of_run(args.like, args.network)
        task = config.task
    else:
        task, train_size = args.task, args.train_size
        config = CNNConfig(
            list(TASKS[task].class_names),
            TASKS[task].ordinal,
            task,
            args.backbone,
            args.image_size,
            args.input_scale,
            output_stride=d.output_stride,
            top_percent=d.top_percent,
        )
        tc = TrainConfig(global_epochs=args.epochs, patience=args.patience, batch_size=args.batch_size)
    splits = synthetic_splits(task, train_size, 0, config.input_size, seed=tc.seed)
    tc = dataclasses.replace(tc, max_minutes=args.max_minutes, device=args.device)
    train_cnn(config, splits, Path(args.out), tc)
    log_command(args.out, "diffmic.baseline", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
