"""How to run the reverse chain: one frozen options object for the pipeline, the CLI, the app, evaluation
and training-time validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .diffusion import SAMPLERS, sampler_class

__all__ = ["APP_DEFAULT", "MAX_SAMPLES", "SAMPLERS", "SamplingOptions"]  # SAMPLERS: the sampler registry
MAX_SAMPLES = 1024


@dataclass(frozen=True)
class SamplingOptions:
    """Sampler (a name or label of ``diffusion.SAMPLERS``, stored as its name; all T steps unless ``steps``
    is given), steps, chains per image, seed, DDIM's eta, and the prior mean of the chain (``fused``;
    ``global``/``local``/``none`` for teaching)."""

    sampler: str = "ddpm"
    steps: int | None = None  # None = all T
    samples: int = 8
    seed: int = 0
    eta: float = 0.0
    prior: str = "fused"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampler", sampler_class(self.sampler).name)
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 (or None for all T), got {self.steps}")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples must be between 1 and {MAX_SAMPLES}, got {self.samples}")
        if not 0 <= self.seed < 2**63:
            raise ValueError("the seed must be a non-negative whole number")
        if self.eta < 0:
            raise ValueError("eta must be >= 0")
        if self.prior not in ("fused", "global", "local", "none"):
            raise ValueError(f"unknown prior {self.prior!r}; use fused, global, local or none")

    def with_(self, **changes: Any) -> SamplingOptions:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-serialisable dict."""
        return asdict(self)


APP_DEFAULT = (
    SamplingOptions()
)  # what the app, the CLI's predict and the benchmarks use: DDPM, T steps, 8 chains
