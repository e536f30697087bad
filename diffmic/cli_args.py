"""The arguments of ``python -m diffmic``: one function per command (``build_parser`` puts them together).

The choices come from the registries: ``--task`` from ``tasks.TASKS`` (those with generated data),
``--sampler`` from ``diffusion.SAMPLERS``; the ``train`` command's arguments (the stages from
``train.STAGES``) are ``cli_train_args``'.
"""

from __future__ import annotations

import argparse

from .cli_train_args import MODEL_DEFAULTS, TRAIN_DEFAULTS, add_train_parser
from .diffusion import SAMPLERS
from .options import APP_DEFAULT, SamplingOptions
from .tasks import generated_tasks


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
        "--sampler",
        choices=list(SAMPLERS),
        default=default.sampler,
        help="; ".join(f"{cls.name}: {cls.help}" for cls in SAMPLERS.values()) + " (default %(default)s)",
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
    for add in (
        _add_predict,
        _add_generate,
        add_train_parser,
        _add_evaluate,
        _add_fit_ood,
        _add_choose_explanations,
        _add_push,
    ):
        add(sub)
    return parser


def _add_predict(sub: argparse._SubParsersAction) -> None:
    """``predict IMAGE --model M``."""
    p = sub.add_parser(
        "predict", help="classify one image", description="Classify one image (PNG, JPEG, DICOM…)."
    )
    p.add_argument("image", help="image file")
    p.add_argument(
        "--model", required=True, help="model folder (e.g. weights/fundus) or Hugging Face Hub repo id"
    )
    _add_sampling_args(p, APP_DEFAULT)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    """``generate --task T --n N``."""
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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """``evaluate --model M --task T | --data D``."""
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


def _add_fit_ood(sub: argparse._SubParsersAction) -> None:
    """``fit-ood FOLDER --task T | --data D``."""
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


def _add_choose_explanations(sub: argparse._SubParsersAction) -> None:
    """``choose-explanations FOLDER --task T | --data D``."""
    p = sub.add_parser(
        "choose-explanations",
        help="re-make a saved model's explanation choices on its validation images",
        description="Choose the contrast of the DCG evidence map and the Grad-CAM variant by the pointing "
        "game on the validation images (with lesion masks) the model was trained with, as training does at "
        "its end; updates config.json. The ROI map is left alone: the local branch was trained on its crops.",
    )
    _add_saved_model_args(p)


def _add_push(sub: argparse._SubParsersAction) -> None:
    """``push FOLDER REPO_ID``."""
    p = sub.add_parser("push", help="upload a model folder to the Hub")
    p.add_argument("folder")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
