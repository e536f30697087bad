"""The data a saved model was trained on, as the commands that refit or evaluate it read it again: its
generated task or its dataset folder's stratified split, checked against the model's classes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .cli_error import CLIError
from .config import DiffMICConfig
from .tasks import TASKS, preprocessing

if TYPE_CHECKING:
    from .data.datasets import Splits


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
