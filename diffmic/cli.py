"""Command line: ``python -m diffmic {train,evaluate,predict,push}``.

Every expected failure (a bad image, a broken checkpoint, an unreachable Hub, a wrong argument)
ends with exit status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent.parent / "weights"
TASKS = ("fundus", "derm", "placenta")


class CLIError(Exception):
    """An error to report in one line with exit status 2."""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (saved in config.json)")
    g.add_argument("--image-size", type=int, default=128, help="input side in pixels (default 128)")
    g.add_argument(
        "--backbone", default="resnet10t", help="timm model for all three networks (default resnet10t)"
    )
    g.add_argument("--global-backbone", help="timm CNN for the global (CAM) network; overrides --backbone")
    g.add_argument("--local-backbone", help="timm model for the ROI patches; overrides --backbone")
    g.add_argument(
        "--encoder-backbone", help="timm model for the denoiser's image encoder; overrides --backbone"
    )
    g.add_argument("--num-crops", type=int, default=6, help="K ROI patches (default 6)")
    g.add_argument("--crop-size", type=int, default=32, help="ROI patch side in input pixels (default 32)")
    g.add_argument("--cam-size", type=int, default=8, help="side of the class-activation map (default 8)")
    g.add_argument("--feature-dim", type=int, default=512, help="denoiser width (default 512)")
    g.add_argument("--timesteps", type=int, default=1000, help="diffusion steps T (default 1000)")
    g.add_argument(
        "--mmd-weight", type=float, default=0.5, help="weight of the MMD regulariser (default 0.5)"
    )


def _add_sampling_args(p: argparse.ArgumentParser, steps_default: int | None, samples_default: int) -> None:
    p.add_argument(
        "--sampler",
        choices=("ddpm", "ddim"),
        default="ddpm" if steps_default is None else "ddim",
        help="reverse process (default %(default)s)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=steps_default,
        help="number of reverse steps (default: all T for ddpm, 50 for ddim)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=samples_default,
        help="stochastic samples per image for the uncertainty (default %(default)s)",
    )
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic, 1 DDPM-like noise")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: a GPU when present)")


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
        "--model",
        default=str(BUNDLED / "fundus"),
        help="model folder or Hugging Face Hub repo id (default: bundled fundus demo)",
    )
    _add_sampling_args(p, None, 1)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser(
        "train",
        help="train a model",
        description="Train DiffMIC (DCG, then the denoiser); resumes from OUT/checkpoint.pt when it exists.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=TASKS, help="train on the built-in generated dataset of this task")
    src.add_argument("--data", help="ISIC2018 / APTOS2019 / image-folder dataset")
    p.add_argument("--out", required=True, help="output folder (model + checkpoint)")
    p.add_argument(
        "--train-size", type=int, default=3000, help="generated training+validation images (--task)"
    )
    p.add_argument("--dcg-epochs", type=int, default=10)
    p.add_argument("--diffusion-epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the denoiser stage")
    p.add_argument("--dcg-lr", type=float, default=1e-3, help="learning rate of the DCG stage")
    p.add_argument(
        "--joint-dcg", action="store_true", help="keep training the DCG during the diffusion stage"
    )
    p.add_argument(
        "--timesteps-per-image",
        type=int,
        default=4,
        help="(t, noise) draws per image in each diffusion step; the encoder runs once (default 4)",
    )
    p.add_argument("--max-minutes", type=float, help="stop after a checkpoint when this much time has passed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    _add_model_args(p)

    p = sub.add_parser(
        "evaluate",
        help="evaluate a model",
        description="Accuracy, macro-F1, kappa, ECE of DiffMIC and of its global/local/fused priors.",
    )
    p.add_argument("--model", required=True, help="model folder or Hub repo id")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=TASKS, help="held-out generated test images of this task")
    src.add_argument("--data", help="dataset folder (all of it is evaluated)")
    p.add_argument("--test-size", type=int, default=500, help="generated test images (--task)")
    _add_sampling_args(p, 50, 1)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")

    p = sub.add_parser("push", help="upload a model folder to the Hub")
    p.add_argument("folder")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    return parser


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify one image and print the result."""
    from .imageio import load_image
    from .model import DiffMIC

    image = load_image(args.image)  # validate the image before loading a model
    model = DiffMIC.from_pretrained(args.model, device=args.device)
    result = model.predict(
        image, sampler=args.sampler, steps=args.steps, samples=args.samples, seed=args.seed, eta=args.eta
    )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(
            f"{result.label}  (p = {result.probabilities[result.label]:.3f}; {result.sampler}, "
            f"{result.steps} steps, {result.samples} samples, {result.seconds:.2f} s)"
        )
        for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<24} {p:.3f}   prior {result.prior['fused'][name]:.3f}")
    return 0


def _model_config(args: argparse.Namespace, class_names: list[str], ordinal: bool, task: str):
    from .config import DiffMICConfig

    return DiffMICConfig(
        class_names=class_names,
        ordinal=ordinal,
        task=task,
        image_size=args.image_size,
        global_backbone=args.global_backbone or args.backbone,
        local_backbone=args.local_backbone or args.backbone,
        encoder_backbone=args.encoder_backbone or args.backbone,
        num_crops=args.num_crops,
        crop_size=args.crop_size,
        cam_size=args.cam_size,
        feature_dim=args.feature_dim,
        timesteps=args.timesteps,
        mmd_weight=args.mmd_weight,
    )


def cmd_train(args: argparse.Namespace) -> int:
    """Train, resuming when a checkpoint exists."""
    from .data.datasets import folder_splits, synthetic_splits
    from .train import TrainConfig, train

    if args.task:
        splits = synthetic_splits(args.task, args.train_size, 0, args.image_size, seed=args.seed)
    else:
        splits = folder_splits(args.data, args.image_size, seed=args.seed)
    cfg = _model_config(args, splits.class_names, splits.ordinal, args.task or Path(args.data).name)
    tc = TrainConfig(
        out_dir=args.out,
        dcg_epochs=args.dcg_epochs,
        diffusion_epochs=args.diffusion_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        dcg_lr=args.dcg_lr,
        joint_dcg=args.joint_dcg,
        timesteps_per_image=args.timesteps_per_image,
        max_minutes=args.max_minutes,
        seed=args.seed,
        device=args.device,
    )
    out = train(cfg, tc, splits, resume=not args.no_resume)
    print(f"model saved in {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate on held-out generated images or a dataset folder."""
    from .data.datasets import FileDataset, synthetic_splits
    from .data.readers import read_dataset
    from .evaluate import evaluate, format_table
    from .model import DiffMIC

    model = DiffMIC.from_pretrained(args.model, device=args.device)
    cfg = model.config
    if args.task:
        dataset = synthetic_splits(args.task, 0, args.test_size, cfg.image_size, seed=args.seed).test
    else:
        folder = read_dataset(args.data)
        if folder.class_names != cfg.class_names:
            raise CLIError(
                f"the dataset's classes {folder.class_names} differ from the model's {cfg.class_names}"
            )
        dataset = FileDataset(
            [r.path for r in folder.records], [r.label for r in folder.records], cfg.image_size
        )
    report = evaluate(
        model,
        dataset,
        sampler=args.sampler,
        steps=args.steps,
        samples=args.samples,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    print(json.dumps(report) if args.json else format_table(report))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Upload a saved model folder to the Hub."""
    from .hub import load_pretrained, push_to_hub

    model = load_pretrained(args.folder)  # validates the folder before anything is uploaded
    card = (
        (Path(args.folder) / "README.md").read_text() if (Path(args.folder) / "README.md").is_file() else None
    )
    print(push_to_hub(model, args.repo_id, private=args.private, token=args.token, card=card))
    return 0


COMMANDS = {"predict": cmd_predict, "train": cmd_train, "evaluate": cmd_evaluate, "push": cmd_push}


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
