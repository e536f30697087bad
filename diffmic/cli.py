"""Command line: ``python -m diffmic {predict,generate,train,evaluate,fit-ood,choose-explanations,push}``.

Every expected failure (a bad image, a broken checkpoint, an unreachable Hub, a wrong argument)
ends with exit status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cli_args import build_parser, sampling_options
from .cli_train_args import MODEL_DEFAULTS, NO_ENCODER
from .config import ROI_OPTIONS, DiffMICConfig
from .ood import warning as ood_warning
from .tasks import TASKS, preprocessing
from .train import TrainConfig

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .conditioning import ConditioningCache
    from .data.datasets import Splits
    from .model import DiffMIC

__all__ = ["CLIError", "build_parser", "main", "sampling_options"]


class CLIError(Exception):
    """An error to report in one line with exit status 2."""


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify one image and print the result."""
    from .imageio import load_image
    from .pipeline import DiffMICPipeline

    image = load_image(args.image)  # validate the image before loading a model
    options = sampling_options(args)
    pipe = DiffMICPipeline.from_pretrained(args.model, device=args.device)
    result = pipe(image, options)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        if result.ood["flagged"]:
            print(f"warning: {ood_warning(pipe.config)}")
        print(
            f"{result.label}  (probability {result.probabilities[result.label]:.3f}; {options.sampler}, "
            f"{result.steps} steps, {options.samples} chains, {result.seconds:.2f} s)"
        )
        call = result.uncertainty["close_call"]
        if call["verdict"] != "clear":
            (a, b), (pa, pb) = call["classes"], call["probabilities"]
            what = "tie" if call["verdict"] == "tie" else "close call"
            print(
                f"{what} between {a} and {b} ({pa:.3f} vs {pb:.3f}; {', '.join(call['reasons'])}): "
                "more chains (--samples) may separate them"
            )
        for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<24} {p:.3f}   prior {result.prior['fused'][name]:.3f}")
    return 0


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
    print(f"model saved in {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate on held-out generated images or a dataset folder (its classes matched to the model's by
    ``class_match``, as the app's Evaluate tab matches them)."""
    from .class_match import match_dataset, require_same_classes
    from .data.datasets import synthetic_splits
    from .data.readers import read_dataset
    from .evaluate import evaluate, format_table
    from .pipeline import DiffMICPipeline

    pipe = DiffMICPipeline.from_pretrained(args.model, device=args.device)
    cfg = pipe.config
    skipped: dict[str, int] = {}
    if args.task:
        require_same_classes(TASKS[args.task].class_names, cfg.class_names, f"the {args.task} task")
        dataset = synthetic_splits(args.task, 0, args.test_size, cfg.input_size, seed=args.seed).test
    elif args.test_split:
        dataset = _folder_splits(args.data, cfg, args.split_seed).test
    else:
        matched = match_dataset(read_dataset(args.data), cfg.class_names)
        if matched.skipped:
            print(f"warning: skipped {matched.skipped_sentence()}", file=sys.stderr)
        skipped = matched.skipped
        dataset = matched.dataset(cfg)
    report = evaluate(pipe, dataset, sampling_options(args), progress=sys.stderr.isatty())
    report["skipped"] = skipped
    print(json.dumps(report) if args.json else format_table(report))
    return 0


def _model_splits(args: argparse.Namespace, cfg: DiffMICConfig) -> Splits:
    """The training / validation split the model was trained on (generated or read from a folder)."""
    from .data.datasets import synthetic_splits

    if args.task:
        classes = list(TASKS[args.task].class_names)
        if classes != cfg.class_names:
            raise CLIError(f"the task's classes {classes} differ from the model's {cfg.class_names}")
        return synthetic_splits(args.task, args.train_size, 0, cfg.input_size, seed=args.seed)
    return _folder_splits(args.data, cfg, args.seed)


def _folder_splits(path: str, cfg: DiffMICConfig, seed: int) -> Splits:
    """A dataset folder's stratified split (as ``train --data --seed`` made it), checked against the model's
    classes."""
    from .data.datasets import folder_splits

    splits = folder_splits(path, cfg.input_size, seed=seed, square=preprocessing(cfg.task).square)
    if splits.class_names != cfg.class_names:
        raise CLIError(f"the data's classes {splits.class_names} differ from the model's {cfg.class_names}")
    return splits


def _training_conditioning(args: argparse.Namespace, model: DiffMIC, train: Dataset) -> ConditioningCache:
    """The conditioning of the training images: computed (``--views``) or a run's cache (``--cache``)."""
    from .conditioning import ConditioningCache, build_cache

    if not args.cache:
        return build_cache(model, train, args.views, seed=args.seed, progress=sys.stderr.isatty())
    cache = ConditioningCache.load(args.cache)
    if cache.features.shape[::2] != (len(train), model.condition_dim) or not np.array_equal(
        cache.labels, train.labels
    ):
        raise CLIError(f"{args.cache} is not the conditioning of this model's training images")
    return cache


def cmd_fit_ood(args: argparse.Namespace) -> int:
    """Fit the distribution check of a model folder and write it into the folder."""
    from .conditioning import build_cache
    from .hub import CONFIG_NAME, OOD_NAME
    from .model import DiffMIC
    from .ood import save_check
    from .ood_fit import fit_distribution_check

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CLIError(f"{folder} is not a model folder")
    if args.views < 1:
        raise CLIError("--views must be >= 1")
    model = DiffMIC.from_pretrained(folder, device=args.device, load_ood=False)  # refitted: may be stale
    cfg = model.config
    cfg.ood_acceptance = cfg.ood_acceptance if args.acceptance is None else args.acceptance
    cfg.ood_features = args.features or cfg.ood_features
    cfg.validate()
    splits = _model_splits(args, cfg)
    train = _training_conditioning(args, model, splits.train)
    val = build_cache(model, splits.val, 1, seed=args.seed, progress=sys.stderr.isatty())
    model.ood_check, cfg.ood_threshold = fit_distribution_check(model, train, val)
    save_check(model.ood_check, folder)
    cfg.save(folder / CONFIG_NAME)
    accepted = int(np.sum(model.ood_scores(val.features[:, 0]) <= cfg.ood_threshold))
    print(
        f"fitted on {len(train)} training images x {train.views} views ({cfg.ood_features} features); "
        f"threshold {cfg.ood_threshold:.4g} (to accept {cfg.ood_acceptance:.0%} of in-distribution images) "
        f"accepts {accepted} of {len(val)} validation images; wrote {folder / OOD_NAME} and {CONFIG_NAME}"
    )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Upload a saved model folder to the Hub."""
    from .model import DiffMIC

    model = DiffMIC.from_pretrained(args.folder)  # validates the folder before anything is uploaded
    card = (
        (Path(args.folder) / "README.md").read_text() if (Path(args.folder) / "README.md").is_file() else None
    )
    print(model.push_to_hub(args.repo_id, private=args.private, token=args.token, card=card))
    return 0


def cmd_choose_explanations(args: argparse.Namespace) -> int:
    """Choose the explanation settings of a model folder on its validation images; rewrite its config."""
    from .hub import CONFIG_NAME
    from .model import DiffMIC
    from .selection import choose_explanations

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CLIError(f"{folder} is not a model folder")
    model = DiffMIC.from_pretrained(folder, device=args.device)
    cfg = model.config
    values, scores = choose_explanations(model, _model_splits(args, cfg).val)
    if not values:
        raise CLIError("the validation images have no lesion masks: there is nothing to choose by")
    for key, value in values.items():
        setattr(cfg, key, value)
    cfg.validate()
    cfg.save(folder / CONFIG_NAME)
    for name, table in scores.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in table.items()))
    print("chose " + ", ".join(f"{k} = {v}" for k, v in values.items()) + f"; wrote {folder / CONFIG_NAME}")
    return 0


COMMANDS = {
    "predict": cmd_predict,
    "generate": cmd_generate,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "fit-ood": cmd_fit_ood,
    "choose-explanations": cmd_choose_explanations,
    "push": cmd_push,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .config import ConfigError
    from .hub import ModelLoadError
    from .imageio import ImageLoadError

    try:
        return COMMANDS[args.command](args)
    except (
        CLIError,
        ImageLoadError,
        ModelLoadError,
        ConfigError,
        ValueError,
        FileNotFoundError,
        OSError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
