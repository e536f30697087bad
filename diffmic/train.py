"""Three-stage DiffMIC training, resumable, single-process on CPU or under ``torchrun``.

1. ``global``: the DCG's global network and CAM head, cross-entropy.
2. ``local``: the ROI branch on the crops it will see at inference (the global network frozen, so the
   ROIs are those of inference), cross-entropy on the local and the fused logits. Then, on validation
   data, the fusion weights (``fusion="fitted"``) are fitted.
   ``encoder`` (only for a model with ``encoder_backbone``): the denoiser's own image encoder, with a
   linear classifier, cross-entropy on the image it reads (``encoder_view``: the full input or the global
   view); then frozen, so that it gives the denoiser evidence of its own and the next stage stays cached.
3. ``diffusion``: the denoiser learns to predict the noise of diffused labels (with the MMD regulariser).
   ``cached`` (the default): the frozen conditioning of several augmented views per image is computed
   once (``diffmic.conditioning``) and the head trains on it for hundreds of epochs; ``end-to-end``
   runs the networks at every step (for GPUs; ``joint_dcg`` also trains the DCG).

Every stage is validated on a split carved from the training data (never the test set) and ends when
its validation score has not improved for ``patience`` validations (or at its epoch cap); the EMA
weights of the best validation are kept. The diffusion stage is validated with the estimator that is
shipped (``val_options``: the app's DDPM, all T steps, 8 chains), whose softmax temperature is then
fitted on the same validation chains. At the end the distribution check (``diffmic.ood``) is fitted on the
training conditioning (every cached view) and its threshold on the validation conditioning. A checkpoint
(weights, optimiser, EMA, ``TrainState``) is written every few minutes and at every epoch's end: a stopped
run continues where it stopped.

The image stages run under bfloat16 autocast with channels-last tensors where the hardware has fast
bfloat16 (``precision="auto"``, ``diffmic.precision``); validation is always float32.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .calibration import fit_fusion_weights, fit_temperature
from .conditioning import ConditioningCache, build_cache
from .config import ENCODER_ARCHITECTURE, LOCAL_ARCHITECTURE, ROI_OPTIONS, DiffMICConfig
from .data.datasets import Splits, batch_of
from .dcg import check_local_from_global
from .distributed import Distributed, epoch_batches
from .ema import EMA
from .losses import diffusion_loss, global_loss, local_loss
from .metrics import macro_f1
from .model import DiffMIC, check_encoder_from_global, resolve_device
from .ood_fit import fit_distribution_check
from .options import APP_DEFAULT, SamplingOptions
from .pipeline import DiffMICPipeline
from .precision import PRECISIONS, autocast, training_dtype
from .selection import choose_explanations, choose_roi_map
from .transforms import normalise, training_batch
from .uncertainty import answer_from_labels

STAGES = ("global", "local", "encoder", "diffusion")  # "encoder" only for a model with an encoder
CHECKPOINT_NAME = "checkpoint.pt"
# a new local network's start: random weights, or the trained global network's
LOCAL_INITS = ("scratch", "global")
# set by training on validation data, not by the user
FITTED_FIELDS = (
    "fusion_weights",
    "temperature",
    "roi_map",
    "saliency_contrast",
    "cam_method",
    "cam_stage",
    "ood_threshold",
)
# settings of the distribution check, fitted after the last stage: a resumed run may change them, and
# checkpoints written before they existed resume
POST_HOC_FIELDS = ("ood_features", "ood_acceptance")


@dataclass
class TrainConfig:
    """Optimisation settings (the model's own settings live in DiffMICConfig)."""

    out_dir: str = "runs/diffmic"
    global_epochs: int = 30  # caps; each stage stops earlier when validation stops improving
    local_epochs: int = 20
    diffusion_epochs: int = 400
    patience: int = 5  # validations without improvement before a stage ends
    batch_size: int = 32
    global_lr: float = 1e-3
    local_lr: float = 1e-3
    local_init: str = "scratch"  # one of LOCAL_INITS: "global" starts it from the trained global network
    encoder_init: str = "scratch"  # the same for the denoiser's own encoder
    lr: float = 1e-3  # the denoiser's
    weight_decay: float = 1e-4
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    stage2: str = "cached"  # or "end-to-end"
    cache_views: int = 8  # augmented views per training image in the cache (view 0 unaugmented)
    diffusion_batch_size: int = 256  # images per step of the cached stage
    timesteps_per_image: int = 4  # (t, eps) draws per image and step
    val_every: int = 10  # cached diffusion epochs between validations
    val_options: SamplingOptions = APP_DEFAULT  # the estimator that is selected and calibrated
    joint_dcg: bool = False  # end-to-end only: keep training the DCG with the diffusion loss
    choose_on_validation: bool = True  # ROI map and Grad-CAM variant by the lesion masks of validation images
    augment: bool = True
    precision: str = "auto"  # one of PRECISIONS: autocast dtype of the image stages ("auto": bf16 if fast)
    encoder_epochs: int = 20  # cap of the encoder stage (models with an encoder of their own)
    encoder_lr: float = 1e-3
    checkpoint_minutes: float = 5.0
    max_minutes: float | None = None  # stop (after a checkpoint) when this much time has passed
    max_steps_per_stage: int | None = None  # for smoke tests
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.stage2 not in ("cached", "end-to-end"):
            raise ValueError(f"stage2 must be 'cached' or 'end-to-end', got {self.stage2!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("local_init", "encoder_init"):
            if getattr(self, name) not in LOCAL_INITS:
                raise ValueError(
                    f"{name} must be one of {', '.join(LOCAL_INITS)}, got {getattr(self, name)!r}"
                )
        if isinstance(self.val_options, dict):
            self.val_options = SamplingOptions(**self.val_options)


@dataclass
class TrainState:
    """Where a run is: stored in the checkpoint, so a resumed run continues from here."""

    stage: str = STAGES[0]
    epoch: int = 0  # epochs done in this stage
    batch: int = 0  # batches done in this epoch
    loss_sum: float = 0.0  # their summed losses (a resumed epoch's mean loss covers them all)
    steps: int = 0  # steps done in this stage (max_steps_per_stage counts across resumes)
    best: float = -1.0  # best validation score of this stage
    stale: int = 0  # validations since the best
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0  # wall-clock training time, summed over resumed runs
    fitted: dict = field(default_factory=dict)  # FITTED_FIELDS values found so far


def _stage_modules(model: DiffMIC, stage: str, tc: TrainConfig) -> nn.ModuleList:
    """The modules a stage trains (and keeps an EMA of)."""
    dcg = model.dcg
    if stage == "global":
        return nn.ModuleList([dcg.global_net, dcg.cam_head])
    if stage == "local":
        return nn.ModuleList([dcg.local_net, dcg.attention_pool, dcg.local_head])
    if stage == "encoder":
        return nn.ModuleList([model.encoder, model.encoder_head])
    parts: list[nn.Module] = [model.denoiser]
    if tc.stage2 == "end-to-end":
        parts += [m for m in (model.encoder, model.encoder_head) if m is not None]
        parts += [dcg] if tc.joint_dcg else []
    return nn.ModuleList(parts)


# weights that start afresh when a saved model is trained further with another local architecture: the
# local branch's, and the denoiser's (its input width is the local embedding's)
NEW_WITH_LOCAL_BRANCH = ("dcg.local_net.", "dcg.attention_pool.", "dcg.local_head.", "denoiser.")
# ... and with another encoder of the denoiser's own (or a first one): the encoder's and the denoiser's
NEW_WITH_ENCODER = ("encoder.", "encoder_head.", "denoiser.")


def _changed_fields(a: DiffMICConfig, b: DiffMICConfig) -> set[str]:
    """The config fields on which two configs differ, but for the ROI options (no weight depends on them)."""
    da, db = a.to_dict(), b.to_dict()
    return {k for k in da if da[k] != db[k]} - set(ROI_OPTIONS)


class Trainer:
    """Owns the model, the optimiser, the EMA and the checkpoint of one training run."""

    def __init__(self, model_config: DiffMICConfig, train_config: TrainConfig, splits: Splits):
        self.cfg, self.tc, self.splits = model_config, train_config, splits
        if train_config.local_init == "global":  # refused now, not after the global stage's hours
            check_local_from_global(model_config)
        if train_config.encoder_init == "global":
            check_encoder_from_global(model_config)
        self.dist = Distributed()
        self.device = self.dist.device(resolve_device(train_config.device))
        self.out = Path(train_config.out_dir)
        torch.manual_seed(train_config.seed)
        self.model = DiffMIC(model_config).to(self.device)
        self.dtype = training_dtype(train_config.precision, self.device)
        if self.dtype != torch.float32:
            self.model.to(memory_format=torch.channels_last)
        self.generator = torch.Generator().manual_seed(train_config.seed + 1000 * self.dist.rank)
        self.state = TrainState()
        self.best: dict[str, torch.Tensor] | None = (
            None  # the stage modules' EMA weights at the best validation
        )
        self.cache: ConditioningCache | None = None
        self.val_cache: ConditioningCache | None = None
        self.started = self._tick = self.last_checkpoint = time.monotonic()
        self._new_stage(self.state.stage)

    # ------------------------------------------------------------ set-up per stage
    def _new_stage(self, stage: str) -> None:
        lr = {
            "global": self.tc.global_lr,
            "local": self.tc.local_lr,
            "encoder": self.tc.encoder_lr,
            "diffusion": self.tc.lr,
        }[stage]
        self.modules = _stage_modules(self.model, stage, self.tc)
        self.model.requires_grad_(False)  # no gradients are computed for the frozen parts
        self.modules.requires_grad_(True)
        self.params = list(self.modules.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=self.tc.weight_decay)
        self.ema = EMA(self.modules, self.tc.ema_decay)

    # ------------------------------------------------------------ checkpointing
    @property
    def checkpoint_path(self) -> Path:
        """Where the resumable checkpoint lives."""
        return self.out / CHECKPOINT_NAME

    def _user_config(self) -> dict:
        skip = FITTED_FIELDS + POST_HOC_FIELDS
        return {k: v for k, v in self.cfg.to_dict().items() if k not in skip}

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
        skip = FITTED_FIELDS + POST_HOC_FIELDS
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

    def start_from(self, folder: str | Path, stage: str) -> None:
        """Begin at ``stage`` with a saved model's weights (to train one stage of a finished model further).

        The model config must be the saved one, but for the ROI options (``config.ROI_OPTIONS``) and two
        architectures a run may renew from their stage on: the local branch's (``config.LOCAL_ARCHITECTURE``,
        from the local stage or before: the saved global branch is kept) and the denoiser's own encoder
        (``config.ENCODER_ARCHITECTURE``, added or changed from the encoder stage or before). The renewed
        modules and the denoiser (whose input width follows them) start afresh. Otherwise the stage's
        validation score with the saved weights is the one to beat, so the stage keeps them unless it
        improves on them. Later stages and fits follow."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
        asked = stage
        if stage == "encoder" and self.model.encoder is None:
            stage = "diffusion"  # a model without an encoder of its own has no encoder stage
        saved = DiffMIC.from_pretrained(folder, load_ood=False)
        changed = _changed_fields(saved.config, self.cfg)
        if changed - set(LOCAL_ARCHITECTURE) - set(ENCODER_ARCHITECTURE):
            raise ValueError(
                f"{folder} holds a model of another config ({', '.join(sorted(changed))} differ)"
            )
        renewed: tuple[str, ...] = ()
        fresh_stage = False  # the stage's own modules are new: no saved score to beat
        for fields, first_stage, prefixes in (
            (LOCAL_ARCHITECTURE, "local", NEW_WITH_LOCAL_BRANCH),
            (ENCODER_ARCHITECTURE, "encoder", NEW_WITH_ENCODER),
        ):
            if not changed & set(fields):
                continue
            if STAGES.index(asked) > STAGES.index(first_stage):
                raise ValueError(
                    f"a new {first_stage} architecture ({', '.join(sorted(changed & set(fields)))}) is "
                    f"trained from the {first_stage} stage: begin at '{first_stage}' or earlier"
                )
            renewed += prefixes
            fresh_stage = fresh_stage or stage == first_stage
        weights = {
            k: v.float() if v.is_floating_point() else v
            for k, v in saved.state_dict().items()
            if not k.startswith(renewed or ("-",))
        }
        missing, _ = self.model.load_state_dict(weights, strict=not renewed)
        assert all(k.startswith(renewed) for k in missing), missing
        self.state = TrainState(stage=stage)
        if fresh_stage:
            self._init_network(stage)
        self._new_stage(stage)
        entry = {"stage": stage, "epoch": 0, "start_from": str(folder)}
        if renewed:
            entry["new"] = sorted(changed)
        if fresh_stage:
            self.state.history.append(entry)
            return
        scores = self.validate(stage)
        self.state.history.append({**entry, **scores})
        self._keep_if_best(scores)

    def _fit(self, **values) -> None:
        """Record values fitted on validation data and apply them to the model's config."""
        self.state.fitted.update(values)
        self._apply_fitted()

    def _apply_fitted(self) -> None:
        for key, value in self.state.fitted.items():
            setattr(self.cfg, key, tuple(value) if key == "fusion_weights" else value)
        self.cfg.validate()

    # ------------------------------------------------------------ one optimisation step
    def _images(self, idx: np.ndarray, pool: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch (augmented, channels-last; average-pooled by ``pool``) and its labels."""
        pixels, labels = batch_of(self.splits.train, idx)
        x = training_batch(pixels, self.cfg, self.generator if self.tc.augment else None, pool)
        return x.to(self.device), labels.to(self.device)

    def _image_loss(self, stage: str, idx: np.ndarray) -> torch.Tensor:
        dcg = self.model.dcg
        if stage == "global":  # the global network reads only the global view: pooled before augmenting
            view, y = self._images(idx, pool=self.cfg.local_scale)
            return global_loss(dcg.global_branch_of_view(view)[1], y)
        x, y = self._images(idx)
        if stage == "local":
            return local_loss(dcg(x), y)
        if stage == "encoder":
            return F.cross_entropy(self.model.encode(x)[1].float(), y)
        with torch.set_grad_enabled(self.tc.joint_dcg):
            guidance = dcg(x)
        condition = self.model.condition_features(x, guidance)
        priors = (guidance.fused_prior, guidance.global_prior, guidance.local_prior)
        return self._diffusion_loss(condition, y, priors)

    def _cached_loss(self, idx: np.ndarray) -> torch.Tensor:
        assert self.cache is not None
        views = np.random.default_rng([self.tc.seed, self.state.epoch, int(idx[0])]).integers(
            0, self.cache.views, len(idx)
        )
        condition, priors, y = (t.to(self.device) for t in self.cache.rows(idx, views))
        return self._diffusion_loss(condition, y, tuple(priors.unbind(1)))

    def _diffusion_loss(self, condition: torch.Tensor, y: torch.Tensor, priors: tuple) -> torch.Tensor:
        y0 = F.one_hot(y, self.cfg.num_classes).float()
        bandwidth = self.cfg.mmd_bandwidth or float(self.cfg.num_classes)
        parts = diffusion_loss(
            self.model.denoiser,
            condition,
            y0,
            priors,
            self.model.diffusion,
            self.cfg.mmd_weight,
            bandwidth,
            self.generator,
            timesteps_per_image=self.tc.timesteps_per_image,
        )
        return parts.total

    def _step(self, stage: str, idx: np.ndarray) -> float:
        self.model.eval()  # frozen parts keep their batch-norm statistics
        self.modules.train()
        cached = stage == "diffusion" and self.tc.stage2 == "cached"
        if cached:
            loss = self._cached_loss(idx)
        else:  # the denoiser's own loss stays float32 (end to end, only the networks are autocast)
            dtype = self.dtype if stage != "diffusion" else torch.float32
            with autocast(self.device, dtype):
                loss = self._image_loss(stage, idx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.params)
        if self.tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.tc.grad_clip)
        self.optimizer.step()
        self.ema.update(self.modules)
        return loss.item()

    # ------------------------------------------------------------ validation
    def _with_ema(self, fn):
        """Run ``fn()`` with the EMA weights in the stage modules, then restore the live ones."""
        live = copy.deepcopy(self.modules.state_dict())
        self.ema.copy_to(self.modules)
        try:
            return fn()
        finally:
            self.modules.load_state_dict(live)

    @torch.no_grad()
    def _dcg_outputs(self, dataset, parts: tuple[str, ...] = ("global", "local")) -> dict[str, np.ndarray]:
        """Logits of ``parts`` (global, local, encoder) and the labels of a dataset, computing no more: the
        global stage's validation never runs the local branch or the encoder."""
        self.model.eval()
        out: dict[str, list] = {part: [] for part in (*parts, "labels")}
        for start in range(0, len(dataset), 64):
            pixels, labels = batch_of(dataset, np.arange(start, min(start + 64, len(dataset))))
            x = normalise(pixels.numpy(), self.cfg).to(self.device)
            if "local" in parts:
                g = self.model.dcg(x)
                out["global"].append(g.global_logits.cpu().numpy())
                out["local"].append(g.local_logits.cpu().numpy())
            elif "global" in parts:
                out["global"].append(self.model.dcg.global_branch(x)[1].cpu().numpy())
            if "encoder" in parts:
                out["encoder"].append(self.model.encode(x)[1].cpu().numpy())
            out["labels"].append(labels.numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def validate(self, stage: str) -> dict[str, float]:
        """Validation macro-F1 of the stage's output with the EMA weights (its ``score`` selects)."""
        return self._with_ema(lambda: self._validate(stage))

    def _validate(self, stage: str) -> dict[str, float]:
        c = self.cfg.num_classes
        if stage == "diffusion":
            return self._validate_diffusion()
        parts = {"global": ("global",), "local": ("global", "local"), "encoder": ("encoder",)}[stage]
        res = self._dcg_outputs(self.splits.val, parts)
        scores = {m: macro_f1(res["labels"], res[m].argmax(-1), c) for m in parts}
        if stage == "local":
            w = self.cfg.fusion_weights
            scores["fused"] = macro_f1(
                res["labels"], (w[0] * res["global"] + w[1] * res["local"]).argmax(-1), c
            )
        scores["score"] = scores[stage]  # each branch is selected on its own; the fusion is fitted afterwards
        return scores

    def _validate_diffusion(self) -> dict[str, float]:
        """The shipped estimator on the validation conditioning; also fits its temperature."""
        y0, labels = self.validation_chains()
        temperature = fit_temperature(y0, labels)
        answer = answer_from_labels(y0, temperature).numpy()
        one_chain = answer_from_labels(y0[:, :1], temperature).numpy()
        c = self.cfg.num_classes
        score = macro_f1(labels, answer.argmax(-1), c)
        return {
            "diffmic": score,
            "single": macro_f1(labels, one_chain.argmax(-1), c),
            "temperature": temperature,
            "score": score,
        }

    def validation_chains(self) -> tuple[np.ndarray, np.ndarray]:
        """Final label vectors (N, S, C) of the shipped estimator's chains on the validation images."""
        cache = self._validation_cache()
        pipe = DiffMICPipeline(self.model)
        self.model.eval()
        y0 = []
        options = self.tc.val_options.with_(prior="fused")
        for start in range(0, len(cache), 128):
            idx = np.arange(start, min(start + 128, len(cache)))
            features, priors, _ = cache.rows(idx, np.zeros(len(idx), dtype=np.int64))
            *_, last = pipe.denoise(
                features.to(self.device), priors[:, 0].to(self.device), options.with_(seed=start)
            )
            y0.append(last.sample.cpu().numpy())
        return np.concatenate(y0), cache.labels

    def _validation_cache(self) -> ConditioningCache:
        if self.val_cache is None or self.tc.stage2 == "end-to-end":
            self.val_cache = build_cache(self.model, self.splits.val, 1, seed=self.tc.seed)
        return self.val_cache

    def _keep_if_best(self, scores: dict[str, float]) -> None:
        if scores["score"] <= self.state.best:
            self.state.stale += 1
            return
        self.state.best, self.state.stale = scores["score"], 0
        self.best = {k: v.clone() for k, v in self.ema.shadow.items()}

    # ------------------------------------------------------------ the loop
    def _out_of_time(self) -> bool:
        limit = self.tc.max_minutes
        return limit is not None and time.monotonic() - self.started > 60 * limit

    def run(self) -> bool:
        """Train until done or out of time; True when all stages finished (the model is then saved)."""
        for stage in STAGES[STAGES.index(self.state.stage) :]:
            if stage == "encoder" and self.model.encoder is None:
                continue
            if not self._run_stage(stage):
                self.save_checkpoint()
                return False
        self.save_checkpoint()
        return True

    def _epochs(self, stage: str) -> int:
        return {
            "global": self.tc.global_epochs,
            "local": self.tc.local_epochs,
            "encoder": self.tc.encoder_epochs,
        }.get(stage, self.tc.diffusion_epochs)

    def _batches(self, stage: str) -> list[np.ndarray]:
        cached = stage == "diffusion" and self.tc.stage2 == "cached"
        size = self.tc.diffusion_batch_size if cached else self.tc.batch_size
        seed = self.tc.seed + 7919 * STAGES.index(stage)
        return epoch_batches(len(self.splits.train), size, seed, self.state.epoch, self.dist)

    def _validates_now(self, stage: str) -> bool:
        every = self.tc.val_every if stage == "diffusion" and self.tc.stage2 == "cached" else 1
        return (self.state.epoch + 1) % every == 0 or self.state.epoch + 1 == self._epochs(stage)

    def _run_stage(self, stage: str) -> bool:
        if stage == "diffusion" and self.tc.stage2 == "cached" and self.cache is None:
            self.cache = self._training_cache()
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

    def _training_cache(self) -> ConditioningCache:
        path = self.out / "conditioning.npz"
        if path.is_file():
            return ConditioningCache.load(path)
        start = time.monotonic()
        cache = build_cache(
            self.model, self.splits.train, self.tc.cache_views, seed=self.tc.seed, progress=True
        )
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            cache.save(path)
            self.state.history.append({"stage": "cache", "seconds": round(time.monotonic() - start, 1)})
        return cache

    def _finish_stage(self, stage: str) -> None:
        if self.best is not None:
            self.modules.load_state_dict(self.best)
        self.dist.sync_module(self.modules)  # only the main process validated and kept the best weights
        if stage == "global" and self.tc.choose_on_validation:
            mode, scores = choose_roi_map(self.model, self.splits.val)
            if mode is not None:
                self._fit(roi_map=mode)
                self.state.history.append({"stage": "choose roi_map", **scores})
        if stage == "local" and self.cfg.fusion == "fitted":
            res = self._dcg_outputs(self.splits.val)
            self._fit(fusion_weights=list(fit_fusion_weights(res["global"], res["local"], res["labels"])))
        if stage == "diffusion":
            if self.dist.main:
                self.finish()
            return
        nxt = STAGES[STAGES.index(stage) + 1]
        if nxt == "encoder" and self.model.encoder is None:
            nxt = "diffusion"
        self.state = dataclasses.replace(
            self.state, stage=nxt, epoch=0, batch=0, loss_sum=0.0, steps=0, best=-1.0, stale=0
        )
        self.best = None
        self._init_network(nxt)
        self._new_stage(nxt)

    def _init_network(self, stage: str) -> None:
        """A new local network's or encoder's start (before its stage's optimiser and EMA are made)."""
        if stage == "local" and self.tc.local_init == "global":
            self.model.dcg.local_from_global()
        if stage == "encoder" and self.tc.encoder_init == "global":
            self.model.encoder_from_global()

    def finish(self) -> None:
        """Fit the shipped estimator's temperature and the distribution check; save the model and the log."""
        y0, labels = self.validation_chains()
        self._fit(temperature=fit_temperature(y0, labels))
        if self.tc.choose_on_validation:
            values, scores = choose_explanations(self.model, self.splits.val)
            self._fit(**values)
            for key, values_scores in scores.items():
                self.state.history.append({"stage": f"choose {key}", **values_scores})
        self.fit_distribution_check()
        self.model.save_pretrained(self.out)
        log = {
            "train_config": asdict(self.tc),
            "history": self.state.history,
            "train_seconds": round(self.state.train_seconds + time.monotonic() - self._tick, 1),
            "fitted": self.state.fitted,
        }
        (self.out / "train_log.json").write_text(json.dumps(log, indent=2, default=str))

    def fit_distribution_check(self) -> None:
        """Fit ``diffmic.ood`` on the training conditioning (all cached views, or the unaugmented images when
        there is no cache) and its threshold on the validation conditioning."""
        cache = self.cache if self.cache is not None else build_cache(self.model, self.splits.train, 1)
        check, threshold = fit_distribution_check(self.model, cache, self._validation_cache())
        self.model.ood_check = check
        self._fit(ood_threshold=threshold)


def train(
    model_config: DiffMICConfig,
    train_config: TrainConfig,
    splits: Splits,
    resume: bool = True,
    start_from: tuple[str | Path, str] | None = None,
) -> Path:
    """Train (or resume) a DiffMIC; returns the folder holding the model. Stops early at max_minutes.

    ``start_from`` = (saved model folder, stage): a new run begins at that stage with those weights
    (``Trainer.start_from``); a run that has a checkpoint resumes it instead."""
    trainer = Trainer(model_config, train_config, splits)
    if not (resume and trainer.resume()) and start_from is not None:
        trainer.start_from(*start_from)
    trainer.run()
    return trainer.out
