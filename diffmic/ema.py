"""Exponential moving average of a module's weights (the weights that are validated and saved)."""

from __future__ import annotations

import torch


class EMA:
    """Exponential moving average of a module's floating-point state (integer buffers copied).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so short runs are not
    dominated by the random initial weights.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """shadow = d * shadow + (1 - d) * current, with the warmed-up decay d."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, module: torch.nn.Module) -> None:
        """Load the averaged weights into ``module``."""
        module.load_state_dict(self.shadow)

    def state_dict(self) -> dict:
        """The shadow weights and the update count (for a checkpoint)."""
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore from ``state_dict()``, on the devices of the current shadow (a checkpoint is read on the
        CPU; the module may live on a GPU)."""
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the EMA state holds the weights of another module")
        self.shadow = {k: v.to(self.shadow[k].device) for k, v in state["shadow"].items()}
        self.updates = int(state["updates"])
