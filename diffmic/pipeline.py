"""The DiffMIC pipeline: an image in, one result out with everything the app, the CLI and the API show.

Diffusers' split: the networks are an ``nn.Module`` (``diffmic.model.DiffMIC``), the loop is here.
``run`` is a generator: it yields the ``Prepared`` image once its once-per-image passes are done (the
priors, the saliency and the ROIs are known then), a ``RecordedState`` after every reverse step (a
``DenoiseState`` with the run's ``Trajectory``, recorded up to that step: the one record of the run, which
the ``DiffMICOutput`` carries at the end), and finally the ``DiffMICOutput``. ``__call__`` drains it::

    pipe = DiffMICPipeline.from_pretrained("weights/fundus")
    result = pipe("eye.png", SamplingOptions(sampler="ddim", steps=50, samples=8, seed=0))
    for item in pipe.run("eye.png", SamplingOptions()):   # stream it
        ...

The image is decoded and normalised once (``prepare``); the denoiser's encoder work is done once per
image and each reverse step only runs the small head.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .chain import DenoiseState, EpsFn, denoise_steps, last_state
from .diffusion import make_sampler
from .imageio import DecodedImage, rgb_image
from .lean import FoldedHead, fold, lean_chain
from .model import Conditioning, DiffMIC
from .options import SamplingOptions
from .pipeline_outputs import DiffMICOutput, Prepared, RecordedState, RegionsOfInterest, as_dict, recorded
from .tasks import preprocessing
from .trajectory import Trajectory
from .transforms import normalise, resize_square
from .uncertainty import answer_probabilities, sample_uncertainty

ImageLike = str | Path | bytes | Image.Image | np.ndarray | DecodedImage  # DecodedImage: checked already


class DiffMICPipeline:
    """Image → preprocessing → DCG priors → reverse chain → answer, uncertainty and explanations."""

    def __init__(self, model: DiffMIC):
        self.model = model.eval()
        self.config = model.config
        self._explainer: DiffMIC | None = None
        self._folded: tuple[tuple, FoldedHead] | None = None
        self._explainer_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, folder_or_repo: str | Path, **kwargs: Any) -> DiffMICPipeline:
        """A pipeline around ``DiffMIC.from_pretrained(folder_or_repo, **kwargs)``."""
        return cls(DiffMIC.from_pretrained(folder_or_repo, **kwargs))

    # ------------------------------------------------------------------ once per image
    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> tuple[torch.Tensor, np.ndarray]:
        """Decode (``imageio.rgb_image``: a ``DecodedImage`` is not checked again), make square (the task's
        ``Preprocessing``: centre crop or pad), resize and normalise → (B, 3, S, S) on the model's device,
        uint8 pixels."""
        items = list(images) if isinstance(images, list | tuple) else [images]
        size, square = self.config.input_size, preprocessing(self.config.task).square
        pixels = np.stack([resize_square(rgb_image(item), size, square) for item in items])
        return normalise(pixels, self.config).to(self.model.device), pixels

    @torch.inference_mode()
    def prepare(self, image: ImageLike | Prepared) -> Prepared:
        """Preprocess one image and run the once-per-image passes (the DCG and the conditioning)."""
        if isinstance(image, Prepared):
            return image
        x, pixels = self.preprocess(image)
        return Prepared(pixels[0], x, self.model.condition(x))

    def check_distribution(self, image: ImageLike | Prepared) -> dict[str, Any]:
        """Does the image look like the training images? The ``ood`` dict of ``DiffMICOutput``, without
        running the chain (an image is prepared once; a ``Prepared`` one is not passed through the DCG again).
        """
        return self.model.check_distribution(self.prepare(image).conditioning.features)[0]

    # ------------------------------------------------------------------ the chain
    def chain(
        self, conditioning: Conditioning, options: SamplingOptions, generator: Any = None
    ) -> Iterator[DenoiseState]:
        """The reverse chain of a batch of B conditioned images, N = options.samples chains each."""
        return self.denoise(conditioning.features, conditioning.prior(options.prior), options, generator)

    def denoise(
        self, features: torch.Tensor, prior: torch.Tensor, options: SamplingOptions, generator: Any = None
    ) -> Iterator[DenoiseState]:
        """The reverse chain from conditioning vectors (B, D) and prior means (B, C); a state per step. The
        noise comes from ``options.seed``, or from ``generator`` (on the folded path, one per image may be
        given: ``diffmic.batching``).

        A sampler that offers affine steps (``AffineSampler``) runs on the folded head (``diffmic.lean``):
        the same numbers as the generic loop, at a fraction of its per-step cost. Any other sampler runs
        in the generic loop (``diffmic.chain.denoise_steps``) through its ``step``.
        """
        model = self.model
        sampler = make_sampler(options.sampler, model.diffusion, options.steps, options.eta)
        generator = torch.Generator().manual_seed(int(options.seed)) if generator is None else generator
        with torch.inference_mode():
            gates = model.denoiser.gate(features).repeat_interleave(options.samples, dim=0)
        if sampler.affine and callable(getattr(model.denoiser, "fold", None)):
            yield from lean_chain(
                self.folded_head(), gates, prior, sampler, options.samples, generator, self.config.temperature
            )
            return
        eps = self.noise_prediction(gates)
        yield from denoise_steps(
            eps,
            prior,
            sampler,
            samples=options.samples,
            generator=generator,
            temperature=self.config.temperature,
        )

    def noise_prediction(self, gates: torch.Tensor) -> EpsFn:
        """The denoiser as the generic loop's noise prediction, for rows of these image gates (the timestep
        gains looked up in the denoiser's table)."""
        denoiser = self.model.denoiser
        gains = denoiser.gain_table()

        def eps(y: torch.Tensor, t: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
            return denoiser(gates, y, t, prior, gains=gains[t])

        return eps

    def folded_head(self) -> FoldedHead:
        """The denoiser folded for inference, recomputed only when its weights have changed."""
        denoiser = self.model.denoiser
        stamp = tuple(t._version for t in denoiser.state_dict().values()) + (denoiser.training,)
        if self._folded is None or self._folded[0] != stamp:
            self._folded = (stamp, fold(denoiser))
        return self._folded[1]

    @torch.inference_mode()
    def classify_batch(self, x: torch.Tensor, options: SamplingOptions) -> tuple[DenoiseState, Conditioning]:
        """Batched fast path for evaluation: the final state (B images x N chains) and the conditioning."""
        conditioning = self.model.condition(x)
        return last_state(self.chain(conditioning, options)), conditioning

    # ------------------------------------------------------------------ one image, start to end
    def run(
        self, image: ImageLike | Prepared, options: SamplingOptions | None = None, *, explain: bool = False
    ) -> Iterator[Prepared | RecordedState | DiffMICOutput]:
        """Yield the Prepared image, then the state of every reverse step (with the run's trajectory so far),
        then the DiffMICOutput.

        ``explain`` adds Grad-CAM (``diffmic.explain``) of the answer to the output.
        """
        options = options or SamplingOptions()
        start = time.perf_counter()
        prepared = self.prepare(image)
        yield prepared
        trajectory = self.trajectory(prepared, options)
        state = None
        for state in recorded(self.chain(prepared.conditioning, options), trajectory):
            yield state
        assert state is not None
        yield self.result(prepared, state, trajectory, options, time.perf_counter() - start, explain=explain)

    def trajectory(self, prepared: Prepared, options: SamplingOptions, total: int = 0) -> Trajectory:
        """An empty trajectory of this image's chain, centred on its prior (``run`` fills it)."""
        prior = prepared.conditioning.prior(options.prior)[0].cpu()
        return Trajectory(self.config.class_names, options.samples, prior, total=total)

    def __call__(
        self, image: ImageLike | Prepared, options: SamplingOptions | None = None, *, explain: bool = False
    ) -> DiffMICOutput:
        """Classify one image (see ``run``)."""
        return last_state(self.run(image, options, explain=explain))  # type: ignore[return-value]

    # ------------------------------------------------------------------ the result
    def result(
        self,
        prepared: Prepared,
        state: DenoiseState,
        trajectory: Trajectory,
        options: SamplingOptions,
        seconds: float,
        explain: bool = False,
    ) -> DiffMICOutput:
        """Turn the final state of one image's chains into a DiffMICOutput."""
        names = self.config.class_names
        g = prepared.guidance
        sample_probs = state.probs[0].cpu().numpy()
        mean = answer_probabilities(sample_probs)
        idx = int(mean.argmax())
        prior = {
            "global": as_dict(names, g.global_prior[0]),
            "local": as_dict(names, g.local_prior[0]),
            "fused": as_dict(names, g.fused_prior[0]),
        }
        answer = torch.tensor([idx], device=g.cam.device)
        saliency = g.class_saliency(answer, self.config.saliency_contrast)[0].cpu().numpy()
        gradcam = self.gradcam(prepared, idx) if explain else None
        return DiffMICOutput(
            names[idx],
            idx,
            as_dict(names, mean),
            prior,
            sample_uncertainty(sample_probs).to_dict(names),
            options,
            state.total,
            seconds,
            sample_probs,
            prepared.pixels,
            saliency,
            self.regions(prepared),
            trajectory,
            gradcam,
            ood=self.check_distribution(prepared),
        )

    def regions(self, prepared: Prepared) -> RegionsOfInterest:
        """The ROI boxes (in input pixels), attention and full-resolution crops, most attended first."""
        g = prepared.guidance
        s = self.config.local_scale
        attention = g.attention[0].cpu().numpy()
        order = np.argsort(-attention, kind="stable")
        boxes = g.boxes[0].cpu().numpy()[order] * s
        crops = [prepared.pixels[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in boxes.tolist()]
        return RegionsOfInterest(boxes, attention[order], crops)

    def gradcam(self, prepared: Prepared, class_index: int, **kwargs: Any) -> np.ndarray:
        """Grad-CAM of one class (see ``diffmic.explain.grad_cam``), on a private copy of the model.

        Grad-CAM hooks a layer; on the shared model the hooks would also see other requests' passes, so
        it runs on a copy, one request at a time.
        """
        from .explain import grad_cam

        with self._explainer_lock:
            if self._explainer is None:
                self._explainer = copy.deepcopy(self.model).eval()
            return grad_cam(self._explainer, prepared.x.to(self._explainer.device), class_index, **kwargs)
