"""A plain CNN classifier to compare DiffMIC with: the global network alone (its backbone, stride and
pooled linear head), trained with the same data, augmentation, epoch cap, early stopping and
validation-based selection as DiffMIC's global stage. Saved like a DiffMIC (``config.json`` +
``model.safetensors``), resumable.

    python -m diffmic.baseline --task fundus --out runs/cnn_fundus          # train one
    python -m diffmic.baseline --from-model runs/fundus --out runs/cnn_fundus  # export DCG stage 1's

DiffMIC's stage 1 trains exactly this network by exactly this recipe, so the second command gives the
baseline without training it twice: the plain CNN is then the global prior as a model of its own.
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
from .dcg import top_pool
from .distributed import Distributed, epoch_batches
from .ema import EMA
from .metrics import macro_f1
from .model import DiffMIC
from .tasks import generated_tasks
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
    output_stride: int = 32  # the backbone's (16: dilated last stage, as DiffMIC's global network)
    top_percent: float = 1.0  # logits: mean of each class's top-t% cells of the class map (1.0: all)
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
            config.output_stride,
            config.top_percent,
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
    """A timm backbone with a linear classifier on its pooled feature map (top-t% pooling of the class map;
    with t = 100 %, a linear layer on average-pooled features)."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        self.backbone, dim = create_backbone(
            config.backbone, pooled=False, output_stride=config.output_stride
        )
        self.head = nn.Linear(dim, len(config.class_names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, C) of preprocessed inputs (B, 3, input_size, input_size)."""
        s = self.config.input_scale
        fmap = self.backbone.forward_features(F.avg_pool2d(x, s) if s > 1 else x)
        cam = torch.einsum("bdhw,cd->bchw", fmap, self.head.weight) + self.head.bias[:, None, None]
        return top_pool(cam, self.config.top_percent)

    @classmethod
    def from_global_network(cls, model: DiffMIC) -> CNNClassifier:
        """DiffMIC's global network as a classifier of its own (its logits are the global prior's)."""
        cnn = cls(CNNConfig.like(model.config))
        head = model.dcg.cam_head
        cnn.backbone.load_state_dict(model.dcg.global_net.state_dict())
        cnn.head.load_state_dict({"weight": head.weight[:, :, 0, 0], "bias": head.bias})
        return cnn.eval()

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


def main() -> None:
    """CLI of the baseline trainer."""
    d, t = DiffMICConfig(), TrainConfig()
    p = argparse.ArgumentParser(description="Train (or export) the plain-CNN baseline.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=generated_tasks(), help="train on a generated task")
    src.add_argument("--from-model", help="export the global network of a trained DiffMIC folder")
    p.add_argument("--out", required=True)
    p.add_argument("--backbone", default=d.global_backbone)
    p.add_argument("--epochs", type=int, default=t.global_epochs)
    p.add_argument("--patience", type=int, default=t.patience)
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--input-scale", type=int, default=d.local_scale)
    args = p.parse_args()
    if args.from_model:
        export_global_network(args.from_model, Path(args.out))
        return
    splits = synthetic_splits(args.task, args.train_size, 0, args.image_size * args.input_scale, seed=0)
    config = CNNConfig(
        splits.class_names,
        splits.ordinal,
        args.task,
        args.backbone,
        args.image_size,
        args.input_scale,
        output_stride=d.output_stride,
        top_percent=d.top_percent,
    )
    tc = TrainConfig(global_epochs=args.epochs, patience=args.patience)
    train_cnn(config, splits, Path(args.out), tc)


if __name__ == "__main__":
    main()
