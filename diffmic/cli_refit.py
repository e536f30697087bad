"""The commands that refit a saved model folder on its own data and rewrite it: ``fit-ood`` (the
distribution check) and ``choose-explanations`` (the explanation settings)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cli_error import CLIError
from .cli_splits import _model_splits

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .conditioning import ConditioningCache
    from .model import DiffMIC


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
