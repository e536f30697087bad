"""The arguments of ``python -m diffmic train``: the stages', the run's and the model's (added to the other
commands' by ``cli_args.build_parser``). Defaults come from ``TrainConfig`` and ``DiffMICConfig``, the
stages from ``train.STAGES``.
"""

from __future__ import annotations

import argparse

from .config import ENCODER_VIEWS, ROI_MAPS, DiffMICConfig
from .precision import PRECISIONS
from .tasks import generated_tasks
from .train import LOCAL_INITS, STAGES, TrainConfig

MODEL_DEFAULTS = DiffMICConfig()
TRAIN_DEFAULTS = TrainConfig()
NO_ENCODER = "none"  # --encoder-backbone none: the denoiser reads the DCG's features


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """``train --task T | --data D --out O`` with the stages', the optimiser's and the model's options."""
    p = sub.add_parser(
        "train",
        help="train a model",
        description="Train DiffMIC (DCG, then the denoiser); resumes from OUT/checkpoint.pt when it exists.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--task", choices=generated_tasks(), help="train on the built-in generated dataset of this task"
    )
    src.add_argument("--data", help="ISIC2018 / APTOS2019 / image-folder dataset")
    p.add_argument("--out", required=True, help="output folder (model + checkpoint)")
    p.add_argument(
        "--train-size", type=int, default=3000, help="generated training+validation images (--task)"
    )
    _add_stage_args(p)
    _add_run_args(p)
    _add_model_args(p)


def _add_stage_args(p: argparse.ArgumentParser) -> None:
    """The training stages' caps, batches, cache and precision (defaults from TrainConfig)."""
    t = TRAIN_DEFAULTS
    p.add_argument(
        "--global-epochs", type=int, default=t.global_epochs, help="cap of stage 1a (default %(default)s)"
    )
    p.add_argument(
        "--local-epochs", type=int, default=t.local_epochs, help="cap of stage 1b (default %(default)s)"
    )
    p.add_argument("--diffusion-epochs", type=int, default=t.diffusion_epochs, help="cap of stage 2")
    p.add_argument(
        "--patience", type=int, default=t.patience, help="validations without gain that end a stage"
    )
    p.add_argument(
        "--stage2", choices=("cached", "end-to-end"), default=t.stage2, help="(default %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument(
        "--cache-views",
        type=int,
        default=t.cache_views,
        help="augmented views per training image in the diffusion stage's cache (default %(default)s)",
    )
    p.add_argument(
        "--encoder-epochs",
        type=int,
        default=t.encoder_epochs,
        help="cap of the encoder stage (with an encoder)",
    )
    p.add_argument(
        "--encoder-lr", type=float, default=t.encoder_lr, help="learning rate of the encoder stage"
    )
    p.add_argument(
        "--encoder-init",
        choices=LOCAL_INITS,
        default=t.encoder_init,
        help="the denoiser's encoder starts from random weights or from the trained global network's "
        "(needs --encoder-backbone = --global-backbone; default %(default)s)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=t.precision,
        help="autocast of the image stages: auto = bfloat16 where the CPU/GPU has it (default %(default)s)",
    )


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """Learning rates, initialisation, time limit, seed, device, resume and start-from."""
    t = TRAIN_DEFAULTS
    p.add_argument("--lr", type=float, default=t.lr, help="learning rate of the denoiser stage")
    p.add_argument("--global-lr", type=float, default=t.global_lr, help="learning rate of the global stage")
    p.add_argument("--local-lr", type=float, default=t.local_lr, help="learning rate of the local stage")
    p.add_argument(
        "--local-init",
        choices=LOCAL_INITS,
        default=t.local_init,
        help="a new local network starts from random weights or from the trained global network's "
        "(needs --local-backbone = --global-backbone; default %(default)s)",
    )
    p.add_argument(
        "--joint-dcg",
        action="store_true",
        help="end-to-end: keep training the DCG during the diffusion stage",
    )
    p.add_argument(
        "--timesteps-per-image",
        type=int,
        default=t.timesteps_per_image,
        help="(t, noise) draws per image in each diffusion step (default %(default)s)",
    )
    p.add_argument("--max-minutes", type=float, help="stop after a checkpoint when this much time has passed")
    p.add_argument("--seed", type=int, default=t.seed)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument(
        "--init-from",
        help="a saved model folder to train further (its config replaces the model options, "
        "except the ROI options and --local-backbone given)",
    )
    p.add_argument(
        "--start-stage",
        choices=STAGES,
        default="local",
        help="--init-from: the stage to begin at; the later stages and fits follow (default %(default)s)",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    d = MODEL_DEFAULTS
    g = p.add_argument_group("model (saved in config.json; defaults from DiffMICConfig)")
    g.add_argument(
        "--image-size", type=int, default=d.image_size, help="global view side (default %(default)s)"
    )
    g.add_argument(
        "--local-scale",
        type=int,
        default=d.local_scale,
        help="ROI crops are cut at this multiple of the global view's resolution (default %(default)s)",
    )
    g.add_argument(
        "--global-backbone", default=d.global_backbone, help="timm CNN of the CAM (default %(default)s)"
    )
    g.add_argument(
        "--local-backbone",
        help=f"timm model of the ROIs (default {d.local_backbone}; with --init-from: a new local branch, "
        "trained from the local stage on)",
    )
    g.add_argument(
        "--encoder-backbone",
        default=d.encoder_backbone,
        help=f"a separate timm encoder for the denoiser (default: reuse the DCG's features; '{NO_ENCODER}' "
        "with --init-from: remove the saved model's)",
    )
    g.add_argument(
        "--encoder-view",
        choices=ENCODER_VIEWS,
        default=d.encoder_view,
        help="what the denoiser's encoder reads: the full input or the global view (default %(default)s)",
    )
    g.add_argument(
        "--output-stride", type=int, default=d.output_stride, help="CAM stride (default %(default)s)"
    )
    # the ROI options may also change a saved model's (--init-from): no weight depends on them
    g.add_argument("--num-crops", type=int, help=f"K ROI patches (default {d.num_crops})")
    g.add_argument("--crop-size", type=int, help=f"ROI side in global-view px (default {d.crop_size})")
    g.add_argument(
        "--roi-map",
        choices=ROI_MAPS,
        help=f"(default {d.roi_map}; the global stage re-chooses it on validation images with lesion masks)",
    )
    g.add_argument(
        "--fusion", default="fitted", choices=("mean", "fitted"), help="fusion of the priors' logits"
    )
    g.add_argument(
        "--feature-dim", type=int, default=d.feature_dim, help="denoiser width (default %(default)s)"
    )
    g.add_argument(
        "--timesteps", type=int, default=d.timesteps, help="diffusion steps T (default %(default)s)"
    )
    g.add_argument("--mmd-weight", type=float, default=d.mmd_weight, help="MMD weight (default %(default)s)")
