"""DiffMIC: the DCG prior network, the conditional denoiser and the label diffusion, in one module.

Programs use it like this::

    model = DiffMIC.from_pretrained("weights/fundus")        # a folder or a Hub repo id
    result = model.predict(Image.open("eye.png"), sampler="ddim", steps=50, samples=8, seed=0)
    for state in model.stream(image):                       # one DenoiseState per reverse step
        ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .config import DiffMICConfig
from .dcg import DualGuidance, Guidance
from .denoiser import ConditionalDenoiser
from .diffusion import LabelDiffusion, make_sampler
from .imageio import load_image
from .pipeline import DenoiseState, denoise_steps, last_state
from .transforms import normalise, resize_square
from .uncertainty import sample_uncertainty

ImageLike = str | Path | bytes | Image.Image | np.ndarray


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def prior_mean(guidance: Guidance, which: str = "fused") -> torch.Tensor:
    """The prior mean of the chain: the fused, global or local DCG prior, or zeros (``none``)."""
    options = {
        "fused": lambda: guidance.fused_prior,
        "global": lambda: guidance.global_prior,
        "local": lambda: guidance.local_prior,
        "none": lambda: torch.zeros_like(guidance.global_logits),
    }
    if which not in options:
        raise ValueError(f"unknown prior {which!r}; use one of {', '.join(options)}")
    return options[which]()


@dataclass
class Prepared:
    """One image after preprocessing and the once-per-image network passes."""

    pixels: np.ndarray  # uint8 (S, S, 3), the model's view of the image
    guidance: Guidance  # batch of 1
    features: torch.Tensor  # (1, D) denoiser image features


@dataclass
class Prediction:
    """The answer for one image; ``to_json()`` is what the CLI and the app's API return."""

    label: str
    label_index: int
    probabilities: dict[str, float]
    prior: dict[str, dict[str, float]]  # global / local / fused → class → p
    uncertainty: dict[str, Any]
    sampler: str
    steps: int
    samples: int
    seed: int
    seconds: float
    sample_probs: np.ndarray  # (N, C) final probabilities of each stochastic sample

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict with the documented fields."""
        return {
            "label": self.label,
            "label_index": self.label_index,
            "probabilities": self.probabilities,
            "prior": self.prior,
            "uncertainty": self.uncertainty,
            "sampler": self.sampler,
            "steps": self.steps,
            "samples": self.samples,
            "seed": self.seed,
            "seconds": round(self.seconds, 4),
        }


class DiffMIC(nn.Module):
    """Dual-guidance diffusion classifier (Yang et al., MICCAI 2023)."""

    def __init__(self, config: DiffMICConfig):
        super().__init__()
        self.config = config
        self.dcg = DualGuidance(config)
        self.denoiser = ConditionalDenoiser(config)
        self.diffusion = LabelDiffusion(
            config.timesteps, config.beta_schedule, config.beta_start, config.beta_end
        )

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return next(self.parameters()).device

    # ---------------------------------------------------------------- hub I/O
    def save_pretrained(self, folder: str | Path, card: str | None = None, half: bool = False) -> Path:
        """Write config.json, model.safetensors and a model card into ``folder`` (see ``diffmic.hub``)."""
        from .hub import save_pretrained

        return save_pretrained(self, folder, card=card, half=half)

    @classmethod
    def from_pretrained(
        cls,
        folder_or_repo: str | Path,
        *,
        device: str | None = "cpu",
        revision: str | None = None,
        token: str | None = None,
    ) -> DiffMIC:
        """Load from a local folder or a Hugging Face Hub repo id (see ``diffmic.hub``)."""
        from .hub import load_pretrained

        return load_pretrained(folder_or_repo, device=device, revision=revision, token=token)

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
        """Upload config, weights and model card to the Hub; returns the repo URL."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, private=private, token=token)

    # ---------------------------------------------------------------- inference
    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> tuple[torch.Tensor, np.ndarray]:
        """Load, crop, resize and normalise images with the config's settings → (B,3,S,S), uint8 pixels."""
        items = list(images) if isinstance(images, list | tuple) else [images]
        pixels = np.stack([resize_square(load_image(item), self.config.image_size) for item in items])
        return normalise(pixels, self.config).to(self.device), pixels

    @torch.inference_mode()
    def prepare(self, image: ImageLike) -> Prepared:
        """Preprocess one image and run the once-per-image passes (DCG and the denoiser's encoder)."""
        x, pixels = self.preprocess(image)
        return Prepared(pixels[0], self.dcg(x), self.denoiser.encode(x))

    def stream(
        self,
        image: ImageLike | Prepared,
        *,
        sampler: str = "ddpm",
        steps: int | None = None,
        samples: int = 1,
        seed: int = 0,
        eta: float = 0.0,
        prior: str = "fused",
    ) -> Iterator[DenoiseState]:
        """Yield the DenoiseState of every reverse step for one image (B = 1).

        ``prior`` picks the prior mean: ``fused`` (DiffMIC), ``global`` or ``local`` (one granularity),
        or ``none`` (a zero mean, i.e. plain label diffusion without guidance; for teaching).
        """
        prepared = image if isinstance(image, Prepared) else self.prepare(image)
        yield from self._chain(
            prepared.features, prior_mean(prepared.guidance, prior), sampler, steps, samples, seed, eta
        )

    def _chain(
        self,
        features: torch.Tensor,
        prior: torch.Tensor,
        sampler: str,
        steps: int | None,
        samples: int,
        seed: int,
        eta: float,
    ) -> Iterator[DenoiseState]:
        if not 1 <= samples <= 1024:
            raise ValueError(f"samples must be between 1 and 1024, got {samples}")
        chain = make_sampler(sampler, self.diffusion, steps, eta)
        generator = torch.Generator().manual_seed(int(seed))
        rows = features.repeat_interleave(samples, dim=0)
        self.eval()

        def eps_fn(y_t: torch.Tensor, t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            return self.denoiser(rows, y_t, t, p)

        yield from denoise_steps(eps_fn, prior, chain, samples, generator, self.config.temperature)

    def predict(
        self,
        image: ImageLike | Prepared,
        *,
        sampler: str = "ddpm",
        steps: int | None = None,
        samples: int = 1,
        seed: int = 0,
        eta: float = 0.0,
    ) -> Prediction:
        """Classify one image: class, calibrated probabilities, priors and sample uncertainty."""
        start = time.perf_counter()
        prepared = image if isinstance(image, Prepared) else self.prepare(image)
        state = last_state(
            self.stream(prepared, sampler=sampler, steps=steps, samples=samples, seed=seed, eta=eta)
        )
        return self.summarise(prepared.guidance, state, sampler, seed, time.perf_counter() - start)

    def summarise(
        self, guidance: Guidance, state: DenoiseState, sampler: str, seed: int, seconds: float
    ) -> Prediction:
        """Turn the final state of a chain (B = 1) into a Prediction."""
        names = self.config.class_names
        sample_probs = state.probs[0].cpu().numpy()
        mean = sample_probs.mean(0)
        idx = int(mean.argmax())

        def as_dict(p: torch.Tensor | np.ndarray) -> dict[str, float]:
            return {n: float(v) for n, v in zip(names, np.asarray(p).reshape(-1), strict=True)}

        prior = {
            "global": as_dict(guidance.global_prior[0].cpu()),
            "local": as_dict(guidance.local_prior[0].cpu()),
            "fused": as_dict(guidance.fused_prior[0].cpu()),
        }
        unc = sample_uncertainty(sample_probs).to_dict(names)
        return Prediction(
            names[idx],
            idx,
            as_dict(mean),
            prior,
            unc,
            sampler.lower(),
            state.total,
            sample_probs.shape[0],
            int(seed),
            seconds,
            sample_probs,
        )

    @torch.inference_mode()
    def classify_batch(
        self,
        x: torch.Tensor,
        *,
        sampler: str = "ddim",
        steps: int | None = 50,
        samples: int = 1,
        seed: int = 0,
        eta: float = 0.0,
    ) -> tuple[DenoiseState, Guidance]:
        """Batched fast path for evaluation: the final state (B images x N samples) and the DCG outputs."""
        guidance = self.dcg(x)
        features = self.denoiser.encode(x)
        state = last_state(self._chain(features, guidance.fused_prior, sampler, steps, samples, seed, eta))
        return state, guidance
