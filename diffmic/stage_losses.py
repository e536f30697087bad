"""What each DiffMIC training stage minimises, on a batch of training indices (the formulas are in
``diffmic.losses``):

- ``global``: cross-entropy of the global network on the global view (pooled before augmenting);
- ``local``: cross-entropy of the local and the fused logits on the crops inference would cut;
- ``encoder``: cross-entropy of the denoiser's own encoder with its linear classifier;
- ``diffusion``: noise matching with the MMD regulariser, on the cached conditioning (``cached``) or on
  the networks' live outputs (``end-to-end``).

The image stages run under autocast (``precision.autocast``); the denoiser's own loss stays float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .conditioning import ConditioningCache
from .config import DiffMICConfig
from .losses import diffusion_loss, global_loss, local_loss
from .model import DiffMIC
from .precision import autocast
from .train_config import TrainConfig, TrainState


class StageLosses:
    """The loss of a stage (``_loss``) for ``train.Trainer``; reads its model, config and cache, and its
    training batches (``StageLoop._images``)."""

    model: DiffMIC
    cfg: DiffMICConfig
    tc: TrainConfig
    state: TrainState
    device: torch.device
    dtype: torch.dtype
    generator: torch.Generator
    cache: ConditioningCache | None

    def _cached(self, stage: str) -> bool:
        """Whether the stage trains on the cached conditioning (the diffusion stage, by default)."""
        return stage == "diffusion" and self.tc.stage2 == "cached"

    def _loss(self, stage: str, idx: np.ndarray) -> torch.Tensor:
        if self._cached(stage):
            return self._cached_loss(idx)
        # the denoiser's own loss stays float32 (end to end, only the networks are autocast)
        dtype = self.dtype if stage != "diffusion" else torch.float32
        with autocast(self.device, dtype):
            return self._image_loss(stage, idx)

    def _image_loss(self, stage: str, idx: np.ndarray) -> torch.Tensor:
        dcg = self.model.dcg
        if stage == "global":  # the global network reads only the global view: pooled before augmenting
            view, y = self._images(idx, pool=self.cfg.local_scale)
            return global_loss(dcg.global_branch_of_view(view)[1], y)
        x, y = self._images(idx)
        if stage == "local":
            return local_loss(dcg(x), y)
        if stage == "encoder":
            return F.cross_entropy(self.model.encode(x)[1].float(), y)
        with torch.set_grad_enabled(self.tc.joint_dcg):
            guidance = dcg(x)
        condition = self.model.condition_features(x, guidance)
        priors = (guidance.fused_prior, guidance.global_prior, guidance.local_prior)
        return self._diffusion_loss(condition, y, priors)

    def _cached_loss(self, idx: np.ndarray) -> torch.Tensor:
        assert self.cache is not None
        views = np.random.default_rng([self.tc.seed, self.state.epoch, int(idx[0])]).integers(
            0, self.cache.views, len(idx)
        )
        condition, priors, y = (t.to(self.device) for t in self.cache.rows(idx, views))
        return self._diffusion_loss(condition, y, tuple(priors.unbind(1)))

    def _diffusion_loss(self, condition: torch.Tensor, y: torch.Tensor, priors: tuple) -> torch.Tensor:
        y0 = F.one_hot(y, self.cfg.num_classes).float()
        bandwidth = self.cfg.mmd_bandwidth or float(self.cfg.num_classes)
        parts = diffusion_loss(
            self.model.denoiser,
            condition,
            y0,
            priors,
            self.model.diffusion,
            self.cfg.mmd_weight,
            bandwidth,
            self.generator,
            timesteps_per_image=self.tc.timesteps_per_image,
        )
        return parts.total
