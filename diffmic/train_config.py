"""The settings and the state of a training run: ``TrainConfig`` (what the user chose) and ``TrainState``
(where the run is; stored in the checkpoint as JSON, so its fields are the checkpoint's format)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .options import APP_DEFAULT, SamplingOptions
from .precision import PRECISIONS

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


def log_command(out_dir: str | Path, program: str, argv: list[str]) -> None:
    """Write the command that trained a run (``python -m program argv…``) into its ``train_log.json`` (the
    model card shows it), once the run has finished and written that log; a run stopped by ``max_minutes``
    is noted when it finishes."""
    command = f"python -m {program} {shlex.join(argv)}"
    path = Path(out_dir) / "train_log.json"
    if path.is_file():
        log = json.loads(path.read_text())
        path.write_text(json.dumps({**log, "command": command}, indent=2, default=str))
