"""The arguments of ``python -m diffmic``: one function per command (``build_parser`` puts them together).

The choices come from the registries: ``--task`` from ``tasks.TASKS`` (those with generated data),
``--sampler`` from ``diffusion.SAMPLERS``, the stages from ``train.STAGES``.
"""

from __future__ import annotations

import argparse

from .config import ENCODER_VIEWS, ROI_MAPS, DiffMICConfig
from .diffusion import SAMPLERS
from .options import APP_DEFAULT, SamplingOptions
from .precision import PRECISIONS
from .tasks import generated_tasks
from .train import LOCAL_INITS, STAGES, TrainConfig

MODEL_DEFAULTS = DiffMICConfig()
TRAIN_DEFAULTS = TrainConfig()
NO_ENCODER = "none"  # --encoder-backbone none: the denoiser reads the DCG's features


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
        _add_train,
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


def _add_train(sub: argparse._SubParsersAction) -> None:
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
