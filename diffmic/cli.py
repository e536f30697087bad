"""Command line: ``python -m diffmic {predict,generate,train,evaluate,fit-ood,choose-explanations,push}``.

Every expected failure (a bad image, a broken checkpoint, an unreachable Hub, a wrong argument)
ends with exit status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_args import build_parser, sampling_options
from .cli_error import CLIError
from .cli_refit import cmd_choose_explanations, cmd_fit_ood
from .cli_splits import _folder_splits
from .cli_train import cmd_generate, cmd_train
from .ood import warning as ood_warning
from .tasks import TASKS

__all__ = ["CLIError", "build_parser", "main", "sampling_options"]


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify one image and print the result."""
    from .imageio import decode
    from .pipeline import DiffMICPipeline

    image = decode(args.image)  # checked once, before a model loads; the pipeline trusts it
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


def cmd_push(args: argparse.Namespace) -> int:
    """Upload a saved model folder to the Hub."""
    from .model import DiffMIC

    model = DiffMIC.from_pretrained(args.folder)  # validates the folder before anything is uploaded
    card = (
        (Path(args.folder) / "README.md").read_text() if (Path(args.folder) / "README.md").is_file() else None
    )
    print(model.push_to_hub(args.repo_id, private=args.private, token=args.token, card=card))
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
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for the training log
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
