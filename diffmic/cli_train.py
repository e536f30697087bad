"""The commands that make a model: ``generate`` (its training data, written into shards) and ``train`` (the
model's config and the run's TrainConfig from the parsed arguments, or a saved model trained further)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .cli_error import CLIError
from .cli_splits import _model_splits
from .cli_train_args import MODEL_DEFAULTS, NO_ENCODER
from .config import ROI_OPTIONS, DiffMICConfig
from .tasks import preprocessing
from .train import TrainConfig
from .train_config import log_command


def _model_config(
    args: argparse.Namespace, class_names: list[str], ordinal: bool, task: str
) -> DiffMICConfig:
    return DiffMICConfig(
        class_names=class_names,
        ordinal=ordinal,
        task=task,
        image_size=args.image_size,
        local_scale=args.local_scale,
        global_backbone=args.global_backbone,
        local_backbone=args.local_backbone or MODEL_DEFAULTS.local_backbone,
        encoder_backbone=None if args.encoder_backbone in (None, NO_ENCODER) else args.encoder_backbone,
        encoder_view=args.encoder_view,
        output_stride=args.output_stride,
        fusion=args.fusion,
        feature_dim=args.feature_dim,
        timesteps=args.timesteps,
        mmd_weight=args.mmd_weight,
        **_roi_options(args),
    )


def _roi_options(args: argparse.Namespace) -> dict:
    """The ROI options given on the command line (these may change even for a saved model)."""
    return {name: getattr(args, name) for name in ROI_OPTIONS if getattr(args, name) is not None}


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a task's generated training range into shards (resumable)."""
    import time

    from .data.shards import store_dir, write_store

    if args.n < 1:
        raise CLIError("--n must be at least 1")
    start = time.monotonic()

    def report(done: int, total: int) -> None:
        print(f"shard {done}/{total}  {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)

    folder = write_store(
        args.task,
        args.n,
        args.seed,
        args.size,
        store_dir(args.task, args.seed, args.size),
        workers=args.workers,
        progress=report,
    )
    print(f"{args.n} {args.task} images at {args.size} px in {folder} ({time.monotonic() - start:.0f} s)")
    return 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed ``train`` arguments."""
    return TrainConfig(
        out_dir=args.out,
        global_epochs=args.global_epochs,
        local_epochs=args.local_epochs,
        diffusion_epochs=args.diffusion_epochs,
        patience=args.patience,
        stage2=args.stage2,
        batch_size=args.batch_size,
        lr=args.lr,
        global_lr=args.global_lr,
        local_lr=args.local_lr,
        local_init=args.local_init,
        encoder_init=args.encoder_init,
        cache_views=args.cache_views,
        encoder_epochs=args.encoder_epochs,
        encoder_lr=args.encoder_lr,
        precision=args.precision,
        joint_dcg=args.joint_dcg,
        timesteps_per_image=args.timesteps_per_image,
        max_minutes=args.max_minutes,
        seed=args.seed,
        device=args.device,
    )


def cmd_train(args: argparse.Namespace) -> int:
    """Train, resuming when a checkpoint exists."""
    from .data.datasets import folder_splits, synthetic_splits
    from .hub import CONFIG_NAME
    from .train import train

    if args.init_from:  # train a saved model further: its config, its split, images of its size
        if not (Path(args.init_from) / CONFIG_NAME).is_file():
            raise CLIError(f"{args.init_from} is not a model folder")
        cfg = replace(DiffMICConfig.load(Path(args.init_from) / CONFIG_NAME), **_roi_options(args))
        if args.local_backbone:
            cfg = replace(cfg, local_backbone=args.local_backbone)
        if args.encoder_backbone == NO_ENCODER:  # back to the DCG's features, trained from the encoder stage
            cfg = replace(cfg, encoder_backbone=None)
        elif args.encoder_backbone:  # a new encoder of the denoiser's own, trained from the encoder stage on
            cfg = replace(cfg, encoder_backbone=args.encoder_backbone, encoder_view=args.encoder_view)
        splits = _model_splits(args, cfg)
    else:
        size = args.image_size * args.local_scale
        if args.task:
            splits = synthetic_splits(args.task, args.train_size, 0, size, seed=args.seed)
        else:
            square = preprocessing(Path(args.data).name).square  # the task is the folder's name
            splits = folder_splits(args.data, size, seed=args.seed, square=square)
        cfg = _model_config(args, splits.class_names, splits.ordinal, args.task or Path(args.data).name)
    tc = train_config(args)
    start = (args.init_from, args.start_stage) if args.init_from else None
    out = train(cfg, tc, splits, resume=not args.no_resume, start_from=start)
    log_command(out, "diffmic", args.argv)
    print(f"model saved in {out}")
    return 0
