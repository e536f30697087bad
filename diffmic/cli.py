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

from .config import ENCODER_VIEWS, ROI_MAPS, ROI_OPTIONS, DiffMICConfig
from .ood import warning as ood_warning
from .options import APP_DEFAULT, SamplingOptions
from .precision import PRECISIONS
from .tasks import TASKS, generated_tasks
from .train import LOCAL_INITS, STAGES, TrainConfig

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .conditioning import ConditioningCache
    from .data.datasets import Splits
    from .model import DiffMIC

MODEL_DEFAULTS = DiffMICConfig()
TRAIN_DEFAULTS = TrainConfig()


class CLIError(Exception):
    """An error to report in one line with exit status 2."""


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
        help="a separate timm encoder for the denoiser (default: reuse the DCG's features)",
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


def _add_saved_model_args(p: argparse.ArgumentParser) -> None:
    """A saved model folder and the data it was trained on (to find its training / validation split)."""
    p.add_argument("folder", help="model folder (config.json + model.safetensors)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=generated_tasks(), help="the built-in generated dataset of this task")
    src.add_argument("--data", help="ISIC2018 / APTOS2019 / image-folder dataset")
    p.add_argument(
        "--train-size",
        type=int,
        default=3000,
        help="generated training+validation images, as given to train (--task; default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="the training seed (fixes the split; default 0)")
    p.add_argument("--device", default="auto")


def _add_sampling_args(p: argparse.ArgumentParser, default: SamplingOptions) -> None:
    p.add_argument(
        "--sampler", choices=("ddpm", "ddim"), default=default.sampler, help="(default %(default)s)"
    )
    p.add_argument("--steps", type=int, default=default.steps, help="reverse steps (default: all T)")
    p.add_argument(
        "--samples", type=int, default=default.samples, help="chains per image (default %(default)s)"
    )
    p.add_argument(
        "--eta", type=float, default=default.eta, help="DDIM eta: 0 deterministic, 1 DDPM-like noise"
    )
    p.add_argument("--seed", type=int, default=default.seed, help="random seed (default %(default)s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: a GPU when present)")


def sampling_options(args: argparse.Namespace) -> SamplingOptions:
    """The SamplingOptions of parsed arguments."""
    return SamplingOptions(args.sampler, args.steps, args.samples, args.seed, args.eta)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m diffmic``."""
    parser = argparse.ArgumentParser(
        prog="python -m diffmic",
        description="DiffMIC: classify medical images by "
        "denoising their label (dual-guidance diffusion, MICCAI 2023).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "predict", help="classify one image", description="Classify one image (PNG, JPEG, DICOM…)."
    )
    p.add_argument("image", help="image file")
    p.add_argument(
        "--model", required=True, help="model folder (e.g. weights/fundus) or Hugging Face Hub repo id"
    )
    _add_sampling_args(p, APP_DEFAULT)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser(
        "generate",
        help="generate a task's training images into shards",
        description="Generate the training range of a built-in task once, on every core, into uint8 shards "
        "that training reads memory-mapped (default: under DIFFMIC_CACHE, where `train --task` looks). "
        "Run it again with the same arguments to resume; a larger --n reuses the shards already written.",
    )
    p.add_argument("--task", choices=generated_tasks(), required=True)
    p.add_argument("--n", type=int, required=True, help="training + validation images")
    p.add_argument("--size", type=int, default=MODEL_DEFAULTS.input_size, help="pixels (default %(default)s)")
    p.add_argument("--seed", type=int, default=TRAIN_DEFAULTS.seed)
    p.add_argument("--workers", type=int, help="processes (default: every core)")

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
    _add_model_args(p)

    p = sub.add_parser(
        "evaluate",
        help="evaluate a model",
        description="Accuracy, macro-F1, kappa, ECE of DiffMIC and of its global/local/fused priors.",
    )
    p.add_argument("--model", required=True, help="model folder or Hub repo id")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=generated_tasks(), help="held-out generated test images of this task")
    src.add_argument("--data", help="dataset folder (all of it, or its test part with --test-split)")
    p.add_argument("--test-size", type=int, default=500, help="generated test images (--task)")
    p.add_argument(
        "--test-split",
        action="store_true",
        help="--data: only the 20 %% test part of the split that `train --data` made (with --split-seed)",
    )
    p.add_argument("--split-seed", type=int, default=0, help="the training run's --seed (default 0)")
    _add_sampling_args(p, APP_DEFAULT)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")

    p = sub.add_parser(
        "fit-ood",
        help="fit the distribution check of a saved model",
        description="Fit the distribution check (diffmic.ood) of a model folder on the training images "
        "(statistics) and the validation images (threshold) it was trained with; writes ood.safetensors "
        "and updates config.json.",
    )
    _add_saved_model_args(p)
    p.add_argument(
        "--views",
        type=int,
        default=1,
        help="views per training image: the image, then augmented copies (default %(default)s)",
    )
    p.add_argument(
        "--cache",
        help="the conditioning.npz that cached training wrote in the run folder: its views of the same "
        "training images, instead of computing them",
    )
    p.add_argument(
        "--acceptance",
        type=float,
        help="fraction of validation images the threshold accepts (default: the config's, 0.95)",
    )
    p.add_argument("--features", choices=("global", "local", "both"), help="features the check reads")

    p = sub.add_parser(
        "choose-explanations",
        help="re-make a saved model's explanation choices on its validation images",
        description="Choose the contrast of the DCG evidence map and the Grad-CAM variant by the pointing "
        "game on the validation images (with lesion masks) the model was trained with, as training does at "
        "its end; updates config.json. The ROI map is left alone: the local branch was trained on its crops.",
    )
    _add_saved_model_args(p)

    p = sub.add_parser("push", help="upload a model folder to the Hub")
    p.add_argument("folder")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    return parser


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
        encoder_backbone=args.encoder_backbone or None,
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
        if args.encoder_backbone:  # a new encoder of the denoiser's own, trained from the encoder stage on
            cfg = replace(cfg, encoder_backbone=args.encoder_backbone, encoder_view=args.encoder_view)
        splits = _model_splits(args, cfg)
    else:
        size = args.image_size * args.local_scale
        if args.task:
            splits = synthetic_splits(args.task, args.train_size, 0, size, seed=args.seed)
        else:
            splits = folder_splits(args.data, size, seed=args.seed)
        cfg = _model_config(args, splits.class_names, splits.ordinal, args.task or Path(args.data).name)
    tc = TrainConfig(
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
    start = (args.init_from, args.start_stage) if args.init_from else None
    out = train(cfg, tc, splits, resume=not args.no_resume, start_from=start)
    print(f"model saved in {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate on held-out generated images or a dataset folder."""
    from .data.datasets import FileDataset, synthetic_splits
    from .data.readers import read_dataset
    from .evaluate import evaluate, format_table
    from .pipeline import DiffMICPipeline

    pipe = DiffMICPipeline.from_pretrained(args.model, device=args.device)
    cfg = pipe.config
    if args.task:
        dataset = synthetic_splits(args.task, 0, args.test_size, cfg.input_size, seed=args.seed).test
    elif args.test_split:
        dataset = _folder_splits(args.data, cfg, args.split_seed).test
    else:
        folder = read_dataset(args.data)
        if folder.class_names != cfg.class_names:
            raise CLIError(
                f"the dataset's classes {folder.class_names} differ from the model's {cfg.class_names}"
            )
        dataset = FileDataset(
            [r.path for r in folder.records], [r.label for r in folder.records], cfg.input_size
        )
    report = evaluate(pipe, dataset, sampling_options(args), progress=sys.stderr.isatty())
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

    splits = folder_splits(path, cfg.input_size, seed=seed)
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
