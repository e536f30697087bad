"""Two-stage DiffMIC training, resumable, single-process on CPU or under ``torchrun``.

Stage ``dcg``: the dual-granularity prior network is trained with cross-entropy on its global, local
and fused outputs. Stage ``diffusion``: the conditional denoiser learns to predict the noise of
diffused labels (with the MMD regulariser); the DCG is frozen or trained jointly (``joint_dcg``).

Every epoch is validated on a split carved from the training data (never the test set); the
EMA weights with the best macro-F1 are saved as the model (``save_pretrained``). A checkpoint with
the optimiser, EMA and position inside the epoch is written every few minutes, so a run stopped at
any point continues where it stopped (``resume``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .config import DiffMICConfig
from .data.datasets import ArrayDataset, Splits
from .losses import dcg_loss, diffusion_loss
from .metrics import macro_f1
from .model import DiffMIC, resolve_device
from .transforms import augment, normalise

STAGES = ("dcg", "diffusion")
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Optimisation settings (the model's own settings live in DiffMICConfig)."""

    out_dir: str = "runs/diffmic"
    dcg_epochs: int = 10
    diffusion_epochs: int = 10
    batch_size: int = 32
    dcg_lr: float = 1e-3
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    joint_dcg: bool = False
    timesteps_per_image: int = 4  # (t, eps) draws per image and step: the encoder runs once for all of them
    init_encoder_from_dcg: bool = True  # start the denoiser's encoder from the trained global network
    augment: bool = True
    val_sampler: str = "ddim"
    val_steps: int = 10
    checkpoint_minutes: float = 5.0
    max_minutes: float | None = None  # stop (after a checkpoint) when this much time has passed
    max_steps_per_stage: int | None = None  # for smoke tests
    seed: int = 0
    device: str | None = None


class EMA:
    """Exponential moving average of a module's floating-point state (integer buffers copied).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so short runs are not
    dominated by the random initial weights.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """shadow = d * shadow + (1 - d) * current, with the warmed-up decay d."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, module: torch.nn.Module) -> None:
        """Load the averaged weights into ``module``."""
        module.load_state_dict(self.shadow)


class Distributed:
    """Rank and world size from torchrun's environment; gradient averaging across processes."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def main(self) -> bool:
        """True on the process that validates and writes files."""
        return self.rank == 0

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """All-reduce and average gradients (a no-op in a single process)."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world

    def barrier(self) -> None:
        """Wait for every process."""
        if self.world > 1:
            torch.distributed.barrier()


def batch_of(dataset: Dataset, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (B, S, S, 3) uint8 and labels (B,) for the given indices."""
    if isinstance(dataset, ArrayDataset):
        return torch.from_numpy(dataset.images[idx]), torch.from_numpy(dataset.labels[idx])
    items = [dataset[int(i)] for i in idx]
    return torch.stack([p for p, _ in items]), torch.tensor([y for _, y in items])


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, dist: Distributed) -> list[np.ndarray]:
    """This process's share of a seeded permutation, cut into batches (last partial batch dropped if tiny)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)[dist.rank :: dist.world]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [b for b in batches if len(b) >= 2]


@torch.no_grad()
def predict_dataset(
    model: DiffMIC,
    dataset: Dataset,
    *,
    sampler: str = "ddim",
    steps: int | None = 10,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Labels, priors (global/local/fused) and DiffMIC sample probabilities for a whole dataset."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("labels", "global", "local", "fused", "diffmic", "y0")
    }
    cfg = model.config
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        idx = np.arange(start, min(start + batch_size, len(dataset)))
        pixels, labels = batch_of(dataset, idx)
        x = normalise(pixels.numpy(), cfg).to(model.device)
        state, guidance = model.classify_batch(
            x, sampler=sampler, steps=steps, samples=samples, seed=seed + start
        )
        out["labels"].append(labels.numpy())
        out["global"].append(guidance.global_prior.cpu().numpy())
        out["local"].append(guidance.local_prior.cpu().numpy())
        out["fused"].append(guidance.fused_prior.cpu().numpy())
        out["diffmic"].append(state.probs.cpu().numpy())
        out["y0"].append(state.sample.cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def fit_temperature(y0: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the validation NLL of softmax(y0 / T) averaged over samples (grid search)."""
    y0 = torch.as_tensor(y0, dtype=torch.float64)  # (N, S, C)
    labels_t = torch.as_tensor(labels)
    best, best_nll = 1.0, math.inf
    for temp in np.exp(np.linspace(np.log(0.02), np.log(5.0), 80)):
        p = (y0 / temp).softmax(-1).mean(1).clamp_min(1e-12)
        nll = -p.log()[torch.arange(len(labels_t)), labels_t].mean().item()
        if nll < best_nll:
            best, best_nll = float(temp), nll
    return best


class Trainer:
    """Owns the model, optimiser, EMA and checkpoint of one training run."""

    def __init__(self, model_config: DiffMICConfig, train_config: TrainConfig, splits: Splits):
        self.cfg, self.tc, self.splits = model_config, train_config, splits
        self.dist = Distributed()
        self.device = resolve_device(train_config.device)
        self.out = Path(train_config.out_dir)
        torch.manual_seed(train_config.seed)
        self.model = DiffMIC(model_config).to(self.device)
        self.generator = torch.Generator().manual_seed(train_config.seed + 1000 * self.dist.rank)
        self.state = {"stage": STAGES[0], "epoch": 0, "batch": 0, "best": -1.0, "history": []}
        self.best_dcg: dict[str, torch.Tensor] | None = None
        self.started = time.monotonic()
        self.last_checkpoint = time.monotonic()
        self._tick = time.monotonic()  # wall-clock training time is summed across resumed runs
        self._new_stage(self.state["stage"])

    # ------------------------------------------------------------ set-up per stage
    def _params(self, stage: str) -> list[torch.nn.Parameter]:
        if stage == "dcg":
            return list(self.model.dcg.parameters())
        params = list(self.model.denoiser.parameters())
        return params + list(self.model.dcg.parameters()) if self.tc.joint_dcg else params

    def _new_stage(self, stage: str) -> None:
        lr = self.tc.dcg_lr if stage == "dcg" else self.tc.lr
        self.params = self._params(stage)
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=self.tc.weight_decay)
        self.ema = EMA(self.model, self.tc.ema_decay)

    # ------------------------------------------------------------ checkpointing
    @property
    def checkpoint_path(self) -> Path:
        """Where the resumable checkpoint lives."""
        return self.out / CHECKPOINT_NAME

    def save_checkpoint(self) -> None:
        """Write model, EMA, optimiser and position atomically (main process only)."""
        if not self.dist.main:
            return
        now = time.monotonic()
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + now - self._tick
        self._tick = now
        self.out.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": self.model.state_dict(),
            "ema": self.ema.shadow,
            "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "state": json.dumps(self.state),
            "config": json.dumps(self.cfg.to_dict()),
            "best_dcg": self.best_dcg or {},
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
        saved_cfg = json.loads(payload["config"])
        if saved_cfg != self.cfg.to_dict():
            raise ValueError(
                f"{self.checkpoint_path} was written with another model config; "
                "use a new --out folder or the same settings"
            )
        self.state = json.loads(payload["state"])
        self.model.load_state_dict(payload["model"])
        self._new_stage(self.state["stage"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.ema.shadow = payload["ema"]
        self.ema.updates = int(payload["ema_updates"])
        self.best_dcg = payload["best_dcg"] or None
        self.generator.set_state(payload["generator"])
        return True

    # ------------------------------------------------------------ one optimisation step
    def _loss(self, stage: str, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if stage == "dcg":
            loss = dcg_loss(self.model.dcg(x), y)
            return loss, {"loss": loss.item()}
        with torch.set_grad_enabled(self.tc.joint_dcg):
            guidance = self.model.dcg(x)
        features = self.model.denoiser.encode(x)
        y0 = torch.nn.functional.one_hot(y, self.cfg.num_classes).float()
        bandwidth = self.cfg.mmd_bandwidth or float(self.cfg.num_classes)
        parts = diffusion_loss(
            self.model.denoiser,
            features,
            y0,
            guidance,
            self.model.diffusion,
            self.cfg.mmd_weight,
            bandwidth,
            self.generator,
            timesteps_per_image=self.tc.timesteps_per_image,
        )
        loss = parts.total + (dcg_loss(guidance, y) if self.tc.joint_dcg else 0.0)
        return loss, {
            "loss": loss.item(),
            "mse": parts.mse.item(),
            "mmd": (parts.mmd_global + parts.mmd_local).item(),
        }

    def _step(self, stage: str, pixels: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        self.model.train()
        if stage == "diffusion" and not self.tc.joint_dcg:
            self.model.dcg.eval()  # frozen: keep its batch-norm statistics
        x = normalise(pixels.numpy(), self.cfg)
        if self.tc.augment:
            x = augment(x, self.generator)
        loss, logs = self._loss(stage, x.to(self.device), labels.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.params)
        if self.tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.tc.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        return logs

    # ------------------------------------------------------------ validation
    def validate(self, stage: str) -> dict[str, float]:
        """Macro-F1 on the validation split, with the EMA weights."""
        live = copy.deepcopy(self.model.state_dict())
        self.ema.copy_to(self.model)
        steps = self.tc.val_steps if stage == "diffusion" else 1
        res = predict_dataset(self.model, self.splits.val, sampler=self.tc.val_sampler, steps=steps)
        self.model.load_state_dict(live)
        c = self.cfg.num_classes
        scores = {
            m: macro_f1(res["labels"], res[m].argmax(-1) if m != "diffmic" else res[m].mean(1).argmax(-1), c)
            for m in ("global", "local", "fused", "diffmic")
        }
        scores["score"] = scores["fused"] if stage == "dcg" else scores["diffmic"]
        return scores

    def _keep_if_best(self, stage: str, scores: dict[str, float]) -> None:
        if scores["score"] <= self.state["best"]:
            return
        self.state["best"] = scores["score"]
        if stage == "dcg":
            self.best_dcg = {k[4:]: v.clone() for k, v in self.ema.shadow.items() if k.startswith("dcg.")}
        else:
            best = copy.deepcopy(self.model)
            self.ema.copy_to(best)
            best.save_pretrained(self.out)

    # ------------------------------------------------------------ the loop
    def _out_of_time(self) -> bool:
        limit = self.tc.max_minutes
        return limit is not None and time.monotonic() - self.started > 60 * limit

    def run(self) -> bool:
        """Train until done or out of time; True when both stages finished."""
        for stage in STAGES[STAGES.index(self.state["stage"]) :]:
            if not self._run_stage(stage):
                self.save_checkpoint()
                return False
        self.save_checkpoint()
        return True

    def _run_stage(self, stage: str) -> bool:
        epochs = self.tc.dcg_epochs if stage == "dcg" else self.tc.diffusion_epochs
        n = len(self.splits.train)
        steps_done = 0
        while self.state["epoch"] < epochs:
            epoch = self.state["epoch"]
            batches = epoch_batches(
                n, self.tc.batch_size, self.tc.seed + 7919 * STAGES.index(stage), epoch, self.dist
            )
            bar = tqdm(
                batches[self.state["batch"] :],
                desc=f"{stage} {epoch + 1}/{epochs}",
                leave=False,
                disable=not self.dist.main,
            )
            for idx in bar:
                logs = self._step(stage, *batch_of(self.splits.train, idx))
                self.state["batch"] += 1
                steps_done += 1
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
                if time.monotonic() - self.last_checkpoint > 60 * self.tc.checkpoint_minutes:
                    self.save_checkpoint()
                if self._out_of_time():
                    return False
                if self.tc.max_steps_per_stage and steps_done >= self.tc.max_steps_per_stage:
                    break
            if self.dist.main:
                scores = self.validate(stage)
                self.state["history"].append({"stage": stage, "epoch": epoch + 1, **logs, **scores})
                self._keep_if_best(stage, scores)
                tqdm.write(
                    f"{stage} epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}  val macro-F1 "
                    + " ".join(f"{k} {v:.3f}" for k, v in scores.items() if k != "score")
                )
            self.dist.barrier()
            self.state["epoch"] += 1
            self.state["batch"] = 0
            self.save_checkpoint()
            if self.tc.max_steps_per_stage and steps_done >= self.tc.max_steps_per_stage:
                break
        self._finish_stage(stage)
        return True

    def _finish_stage(self, stage: str) -> None:
        if stage == "dcg":
            if self.best_dcg is not None:
                self.model.dcg.load_state_dict(self.best_dcg)
            self._init_encoder()
            self.state.update(stage="diffusion", epoch=0, batch=0, best=-1.0)
            self._new_stage("diffusion")
        elif self.dist.main:
            self.calibrate()

    def _init_encoder(self) -> None:
        if not self.tc.init_encoder_from_dcg or self.cfg.encoder_backbone != self.cfg.global_backbone:
            return
        self.model.denoiser.encoder.load_state_dict(self.model.dcg.global_net.state_dict(), strict=False)

    def calibrate(self) -> None:
        """Fit the softmax temperature of the saved best model on the validation split and re-save it."""
        from .hub import load_pretrained

        if not (self.out / "model.safetensors").is_file():
            best = copy.deepcopy(self.model)
            self.ema.copy_to(best)
            best.save_pretrained(self.out)
        best = load_pretrained(self.out, device=str(self.device))
        res = predict_dataset(
            best, self.splits.val, sampler=self.tc.val_sampler, steps=self.tc.val_steps, samples=4
        )
        best.config.temperature = fit_temperature(res["y0"], res["labels"])
        best.save_pretrained(self.out)
        (self.out / "train_log.json").write_text(
            json.dumps(
                {
                    "train_config": asdict(self.tc),
                    "history": self.state["history"],
                    "train_seconds": round(self.state.get("train_seconds", 0.0), 1),
                    "temperature": best.config.temperature,
                },
                indent=2,
            )
        )


def train(
    model_config: DiffMICConfig, train_config: TrainConfig, splits: Splits, resume: bool = True
) -> Path:
    """Train (or resume) a DiffMIC; returns the folder holding the best model. Stops early at max_minutes."""
    trainer = Trainer(model_config, train_config, splits)
    if resume:
        trainer.resume()
    trainer.run()
    return trainer.out
