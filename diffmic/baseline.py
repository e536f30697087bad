"""A plain CNN classifier to compare DiffMIC with: the global network's backbone with an average-pooling
linear head, the same data, augmentation, epoch cap, early stopping and validation-based selection as
DiffMIC's global stage. Saved like a DiffMIC (``config.json`` + ``model.safetensors``), resumable.

    python -m diffmic.baseline --task fundus --out runs/cnn_fundus
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from . import hub
from .backbones import create_backbone
from .config import IMAGENET_MEAN, IMAGENET_STD, DiffMICConfig
from .data.datasets import Splits, batch_of, synthetic_splits
from .distributed import Distributed, epoch_batches
from .ema import EMA
from .metrics import macro_f1
from .train import TrainConfig
from .transforms import augment, normalise


@dataclass
class CNNConfig:
    """What rebuilds a baseline: its classes, backbone and preprocessing (as DiffMIC's global view)."""

    class_names: list[str]
    ordinal: bool = False
    task: str = "custom"
    backbone: str = "resnet10t"
    image_size: int = 128  # the network's input side
    input_scale: int = 2  # inputs arrive at image_size * input_scale and are average-pooled (as DiffMIC's)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    model_type: str = "cnn"

    @property
    def input_size(self) -> int:
        """Side of the input pixels."""
        return self.image_size * self.input_scale

    @classmethod
    def like(cls, config: DiffMICConfig) -> CNNConfig:
        """The baseline that matches a DiffMIC config (its global network's backbone and view)."""
        return cls(
            list(config.class_names),
            config.ordinal,
            config.task,
            config.global_backbone,
            config.image_size,
            config.local_scale,
            config.mean,
            config.std,
        )

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> CNNConfig:
        """Read a JSON written by ``save``."""
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise hub.ModelLoadError(f"cannot read {path}: {err}") from err
        if data.get("model_type") != "cnn":
            raise hub.ModelLoadError(f"{path} is not a CNN baseline config")
        return cls(**data)


class CNNClassifier(nn.Module):
    """A timm backbone with a linear classifier on its average-pooled features."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        self.backbone, dim = create_backbone(config.backbone)
        self.head = nn.Linear(dim, len(config.class_names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, C) of preprocessed inputs (B, 3, input_size, input_size)."""
        s = self.config.input_scale
        return self.head(self.backbone(F.avg_pool2d(x, s) if s > 1 else x))

    def save_pretrained(self, folder: Path) -> None:
        """config.json + model.safetensors."""
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / hub.CONFIG_NAME)
        hub.save_tensors(self.state_dict(), folder / hub.WEIGHTS_NAME, half=True, model_type="cnn")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> CNNClassifier:
        """Load a saved baseline, strictly, from safetensors."""
        folder = Path(folder)
        model = cls(CNNConfig.load(folder / hub.CONFIG_NAME))
        model.load_state_dict(hub.load_tensors(folder / hub.WEIGHTS_NAME), strict=True)
        return model.eval()


@torch.no_grad()
def predict_probs(model: CNNClassifier, dataset: Dataset, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities (N, C) over a dataset."""
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        pixels, _ = batch_of(dataset, np.arange(start, min(start + batch_size, len(dataset))))
        out.append(model(normalise(pixels.numpy(), model.config)).softmax(-1).numpy())
    return np.concatenate(out)


@dataclass
class BaselineState:
    """Where a baseline run is (in its checkpoint)."""

    epoch: int = 0
    best: float = -1.0
    stale: int = 0
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0


def train_cnn(config: CNNConfig, splits: Splits, out: Path, tc: TrainConfig) -> BaselineState:
    """Train with the recipe of DiffMIC's global stage (epoch cap, patience, lr, augmentation, EMA).

    Resumes from ``out/checkpoint.pt``; the best EMA weights are saved in ``out`` as they improve.
    """
    torch.manual_seed(tc.seed)
    model = CNNClassifier(config)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.global_lr, weight_decay=tc.weight_decay)
    ema, gen, dist = EMA(model, tc.ema_decay), torch.Generator().manual_seed(tc.seed + 1), Distributed()
    state, ckpt = BaselineState(), out / "checkpoint.pt"
    if ckpt.is_file():
        payload = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        ema.load_state_dict(payload["ema"])
        gen.set_state(payload["generator"])
        state = BaselineState(**json.loads(payload["state"]))
    tick = time.monotonic()
    while state.epoch < tc.global_epochs and state.stale < tc.patience:
        model.train()
        losses = []
        batches = epoch_batches(len(splits.train), tc.batch_size, tc.seed, state.epoch, dist)
        for idx in tqdm(batches, desc=f"cnn {state.epoch + 1}", leave=False):
            pixels, labels = batch_of(splits.train, idx)
            x = normalise(pixels.numpy(), config)
            loss = F.cross_entropy(model(augment(x, gen) if tc.augment else x), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            ema.update(model)
            losses.append(loss.item())
        live = {k: v.clone() for k, v in model.state_dict().items()}
        ema.copy_to(model)
        f1 = macro_f1(splits.val.labels, predict_probs(model, splits.val).argmax(-1), len(config.class_names))
        state.history.append({"epoch": state.epoch + 1, "loss": float(np.mean(losses)), "val_macro_f1": f1})
        tqdm.write(f"cnn epoch {state.epoch + 1}: loss {np.mean(losses):.4f} val macro-F1 {f1:.3f}")
        if f1 > state.best:
            state.best, state.stale = f1, 0
            model.save_pretrained(out)
        else:
            state.stale += 1
        model.load_state_dict(live)
        state.epoch += 1
        now = time.monotonic()
        state.train_seconds, tick = state.train_seconds + now - tick, now
        payload = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "ema": ema.state_dict(),
            "generator": gen.get_state(),
            "state": json.dumps(dataclasses.asdict(state)),
        }
        torch.save(payload, ckpt.with_suffix(".tmp"))
        ckpt.with_suffix(".tmp").replace(ckpt)
    (out / "train_log.json").write_text(json.dumps(dataclasses.asdict(state), indent=2))
    return state


def main() -> None:
    """CLI of the baseline trainer."""
    d, t = DiffMICConfig(), TrainConfig()
    p = argparse.ArgumentParser(description="Train the plain-CNN baseline on a generated task.")
    p.add_argument("--task", required=True, choices=("fundus", "derm", "placenta"))
    p.add_argument("--out", required=True)
    p.add_argument("--backbone", default=d.global_backbone)
    p.add_argument("--epochs", type=int, default=t.global_epochs)
    p.add_argument("--patience", type=int, default=t.patience)
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--input-scale", type=int, default=d.local_scale)
    args = p.parse_args()
    splits = synthetic_splits(args.task, args.train_size, 0, args.image_size * args.input_scale, seed=0)
    config = CNNConfig(
        splits.class_names, splits.ordinal, args.task, args.backbone, args.image_size, args.input_scale
    )
    tc = TrainConfig(global_epochs=args.epochs, patience=args.patience)
    train_cnn(config, splits, Path(args.out), tc)


if __name__ == "__main__":
    main()
