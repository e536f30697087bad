"""A plain CNN classifier for comparison: same backbone, data, augmentation and model selection as DiffMIC.

python -m diffmic.baseline --task fundus --out runs/cnn_fundus --epochs 22
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from .backbones import create_backbone
from .config import DiffMICConfig
from .data.datasets import synthetic_splits
from .metrics import macro_f1
from .train import EMA, Distributed, batch_of, epoch_batches
from .transforms import augment, normalise


class CNNClassifier(nn.Module):
    """A timm backbone with a linear classifier."""

    def __init__(self, backbone: str, num_classes: int):
        super().__init__()
        self.backbone, dim = create_backbone(backbone)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, C)."""
        return self.head(self.backbone(x))


@torch.no_grad()
def predict_probs(
    model: CNNClassifier, dataset: Dataset, config: DiffMICConfig, batch_size: int = 64
) -> np.ndarray:
    """Softmax probabilities (N, C) over a dataset."""
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        pixels, _ = batch_of(dataset, np.arange(start, min(start + batch_size, len(dataset))))
        out.append(model(normalise(pixels.numpy(), config)).softmax(-1).numpy())
    return np.concatenate(out)


def train_cnn(
    task: str,
    out: Path,
    *,
    backbone: str = "resnet10t",
    image_size: int = 128,
    train_size: int = 3000,
    epochs: int = 22,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
) -> dict:
    """Train on a generated task with DiffMIC's data pipeline; keep the best EMA weights by val macro-F1."""
    splits = synthetic_splits(task, train_size, 0, image_size, seed=seed)
    config = DiffMICConfig(
        class_names=splits.class_names, ordinal=splits.ordinal, task=task, image_size=image_size
    )
    torch.manual_seed(seed)
    model = CNNClassifier(backbone, config.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    ema = EMA(model, 0.99)
    gen = torch.Generator().manual_seed(seed + 1)
    dist = Distributed()
    best, history = -1.0, []
    for epoch in range(epochs):
        model.train()
        for idx in tqdm(
            epoch_batches(len(splits.train), batch_size, seed, epoch, dist),
            desc=f"cnn {epoch + 1}",
            leave=False,
        ):
            pixels, labels = batch_of(splits.train, idx)
            loss = F.cross_entropy(model(augment(normalise(pixels.numpy(), config), gen)), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema.update(model)
        live = {k: v.clone() for k, v in model.state_dict().items()}
        ema.copy_to(model)
        f1 = macro_f1(
            splits.val.labels, predict_probs(model, splits.val, config).argmax(-1), config.num_classes
        )
        history.append({"epoch": epoch + 1, "loss": loss.item(), "val_macro_f1": f1})
        tqdm.write(f"cnn {task} epoch {epoch + 1}/{epochs}: loss {loss.item():.4f} val macro-F1 {f1:.3f}")
        if f1 > best:
            best = f1
            out.mkdir(parents=True, exist_ok=True)
            save_file(
                {k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors")
            )
        model.load_state_dict(live)
    meta = {
        "task": task,
        "backbone": backbone,
        "image_size": image_size,
        "epochs": epochs,
        "best_val_macro_f1": best,
        "history": history,
        "config": config.to_dict(),
    }
    (out / "cnn.json").write_text(json.dumps(meta, indent=2))
    return meta


def load_cnn(folder: Path) -> tuple[CNNClassifier, DiffMICConfig]:
    """Load a trained baseline (safetensors only)."""
    meta = json.loads((folder / "cnn.json").read_text())
    config = DiffMICConfig.from_dict(meta["config"])
    model = CNNClassifier(meta["backbone"], config.num_classes)
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.eval(), config


def main() -> None:
    """CLI of the baseline trainer."""
    p = argparse.ArgumentParser(description="Train the plain-CNN baseline on a generated task.")
    p.add_argument("--task", required=True, choices=("fundus", "derm", "placenta"))
    p.add_argument("--out", required=True)
    p.add_argument("--backbone", default="resnet10t")
    p.add_argument("--epochs", type=int, default=22)
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--image-size", type=int, default=128)
    args = p.parse_args()
    train_cnn(
        args.task,
        Path(args.out),
        backbone=args.backbone,
        epochs=args.epochs,
        train_size=args.train_size,
        image_size=args.image_size,
    )


if __name__ == "__main__":
    main()
