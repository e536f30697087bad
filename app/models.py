"""Which models the app can offer, and a thread-safe cache of their pipelines.

A model choice is either a bundled task (``fundus``, ``derm``, ``placenta``: ``weights/<task>/``) or a
Hugging Face Hub repo id (``org/name``). A repo id is tried on the Hub first; when that fails (the Hub
cannot be reached, the repo is unknown, private or gated, the files are broken) the bundled model of
the same task (or the first available one) is used instead, and ``Selection.notice`` says so. Hub
failures are remembered for a minute so an offline Space does not wait on the network at every click.

The cache holds ``DiffMICPipeline`` objects: the pipeline owns the model, its preprocessing and its
Grad-CAM copy, shared by all requests; with batching on (``Settings.batching``) each is a
``BatchedPipeline`` on the registry's one ``Batcher``, so concurrent runs of one model with the same options
are computed together (``diffmic.batching``). Where a flagged image may belong (``models_accepting``) is
asked of each other bundled model's distribution check alone (no chain) and remembered per image.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from diffmic.batching import BatchedPipeline, Batcher
from diffmic.config import ConfigError, DiffMICConfig
from diffmic.hub import CONFIG_NAME, EVALUATION_NAME, WEIGHTS_NAME, ModelLoadError, is_repo_id, resolve_folder
from diffmic.imageio import DecodedImage
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from diffmic.tasks import TASKS

from .bundled import Bundled, find_bundled
from .gpu import model_device
from .lru import LRU
from .settings import BATCH_WAIT_S, BATCH_WORKERS, MAX_BATCH, Settings

HUB_RETRY_S = 60.0
MAX_CACHED = 4
MAX_SUGGESTIONS_CACHED = 64  # images whose suggested models are remembered
WARM_UP = SamplingOptions(sampler="ddim", steps=1, samples=1)  # the shortest possible run


@dataclass(frozen=True)
class Selection:
    """The pipeline to use for a request, where it came from, and a notice for the page (e.g. that the
    Hub fell back)."""

    pipe: DiffMICPipeline
    source: str  # "bundled fundus model", "Hub model org/name"
    name: str  # the bundled name or the repo id that was loaded
    notice: str | None = None

    @property
    def task(self) -> str:
        """The model's task (a key of ``diffmic.tasks.TASKS`` for the built-in ones)."""
        return self.pipe.config.task


def image_digest(image: Image.Image | DecodedImage) -> str:
    """A fingerprint of a decoded image's pixels (the key of the per-image suggestion cache)."""
    pixels = np.ascontiguousarray(np.asarray(image.image if isinstance(image, DecodedImage) else image))
    return hashlib.sha1(f"{pixels.shape}{pixels.dtype}".encode() + pixels.tobytes()).hexdigest()


def _is_repo_id(text: str) -> bool:
    """A Hub repo id that is not also a local path."""
    return is_repo_id(text) and not Path(text).exists()


class ModelRegistry:
    """Bundled models, Hub models and a small LRU cache of their pipelines (safe across threads)."""

    def __init__(self, settings: Settings, max_cached: int = MAX_CACHED):
        self.settings = settings
        self._pipelines: LRU[DiffMICPipeline] = LRU(max_cached)
        self._hub_failures: dict[str, tuple[float, str]] = {}
        self._accepting: LRU[list[str]] = LRU(MAX_SUGGESTIONS_CACHED)  # the bundled models accepting an image
        self.batcher = Batcher(MAX_BATCH, BATCH_WAIT_S, BATCH_WORKERS) if settings.batching else None

    # ------------------------------------------------------------------ what is offered
    def bundled(self) -> list[Bundled]:
        """The known tasks plus any other model folder under the weights folder, in a stable order."""
        return find_bundled(self.settings.weights_dir)

    def available(self) -> list[str]:
        """Names of the bundled models that can be loaded."""
        return [b.name for b in self.bundled() if b.available]

    def choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a dropdown: the bundled models, then the configured Hub repo."""
        out = []
        for b in self.bundled():
            what = TASKS[b.name].title if b.name in TASKS else "custom model"
            out.append((f"{b.name} — {what}" + ("" if b.available else " (missing)"), b.name))
        if self.settings.model_repo:
            out.insert(0, (f"{self.settings.model_repo} (Hugging Face Hub)", self.settings.model_repo))
        return out

    def default_choice(self) -> str:
        """``DIFFMIC_MODEL_REPO`` if set, else the first available bundled model, else ``fundus``."""
        if self.settings.model_repo:
            return self.settings.model_repo
        available = self.available()
        return available[0] if available else next(iter(TASKS))

    def status_markdown(self) -> str:
        """One line saying which bundled models are present and which are missing."""
        parts = [f"**{b.name}** ✓" if b.available else f"**{b.name}** missing" for b in self.bundled()]
        line = "Bundled models: " + " · ".join(parts) + "."
        missing = [b for b in self.bundled() if not b.available]
        if missing and not self.available():
            line += (
                f" No bundled model was found in `{self.settings.weights_dir}`: enter a Hub repo id "
                "(`org/name`), or train one with `python -m diffmic train`."
            )
        elif missing:
            line += " Missing: " + "; ".join(f"`{b.problem}`" for b in missing) + "."
        return line

    def config_of(self, choice: str) -> DiffMICConfig | None:
        """The config of a bundled model (read from its config.json, no weights loaded); None if unknown."""
        for b in self.bundled():
            if b.name == choice and b.available:
                try:
                    return DiffMICConfig.load(b.folder / CONFIG_NAME)
                except ConfigError:
                    return None
        return None

    def evaluation_of(self, choice: str) -> dict | None:
        """The held-out figures stored beside a bundled model (``evaluation.json``) (or None)."""
        for b in self.bundled():
            if b.name == choice and (b.folder / EVALUATION_NAME).is_file():
                try:
                    return json.loads((b.folder / EVALUATION_NAME).read_text())
                except (OSError, ValueError):
                    return None
        return None

    def timesteps(self, choice: str) -> int | None:
        """T of a bundled model; None if unknown."""
        config = self.config_of(choice)
        return config.timesteps if config else None

    def task_of(self, choice: str, load: bool = True) -> str | None:
        """The task of a model choice: a bundled model's from its config.json (no weights loaded; a
        custom task saved in a task's folder counts as that task), a Hub model's once loaded (unless
        ``load`` is False: building the page must not wait on the Hub); None when unknown."""
        config = self.config_of(choice)
        if config is not None and (config.task in TASKS or choice not in TASKS):
            return config.task
        if choice in TASKS or not load:
            return choice if choice in TASKS else None
        try:
            return self.get(choice).task
        except ModelLoadError:
            return None

    def models_accepting(self, image: DecodedImage | Image.Image, task: str) -> list[str]:
        """The bundled models of other tasks whose distribution check accepts ``image`` (decoded: a
        ``DecodedImage`` is not checked again): where a flagged image may belong. Only the checks run
        (``check_distribution``, no chain); the answer is remembered per image, task and set of weights.
        Models without a check are never suggested."""
        bundled = [b for b in self.bundled() if b.available]
        stamps = tuple((b.name, (b.folder / WEIGHTS_NAME).stat().st_mtime_ns) for b in bundled)
        key = (image_digest(image), task, stamps)
        known = self._accepting.get(key)
        if known is not None:
            return list(known)
        out = []
        for b in bundled:
            if self.task_of(b.name) == task:
                continue
            try:
                ood = self.get(b.name).pipe.check_distribution(image)
            except ModelLoadError:
                continue
            if ood.get("available") and not ood.get("flagged"):
                out.append(b.name)
        self._accepting.put(key, out)
        return list(out)

    # ------------------------------------------------------------------ loading
    def get(self, choice: str) -> Selection:
        """The model of a choice, loaded once and cached; ModelLoadError with a message for the page.

        Anything that is not a bundled name is tried on the Hub; when that fails for any reason
        (offline, timeout, unknown, private or gated repo, invalid id, broken files), the bundled model
        of the same task (or the first available one) is used, and the notice says why.
        """
        choice = (choice or "").strip()
        if not choice:
            raise ModelLoadError("choose a model")
        bundled = {b.name: b for b in self.bundled()}
        if choice in bundled:
            return self._bundled(bundled[choice])
        return self._hub(choice, bundled)

    def _bundled(self, b: Bundled, notice: str | None = None) -> Selection:
        if b.problem:
            raise ModelLoadError(
                f"the bundled {b.name} model is missing ({b.problem}); it may still be training"
            )
        stamp = (b.folder / WEIGHTS_NAME).stat().st_mtime_ns  # retrained weights are picked up
        try:
            pipe = self._pipelines.get_or_build(
                ("bundled", str(b.folder), stamp),
                lambda: self._serving(DiffMICPipeline.from_pretrained(b.folder, device=model_device())),
            )
        except ConfigError as err:
            raise ModelLoadError(f"the bundled {b.name} model cannot be loaded: {err}") from err
        return Selection(pipe, f"bundled {b.name} model", b.name, notice)

    def _hub(self, repo: str, bundled: dict[str, Bundled]) -> Selection:
        if not _is_repo_id(repo):
            reason = (
                f"{repo!r} is neither a bundled model ({', '.join(bundled)}) nor a Hub repo id like org/name"
            )
            return self._fall_back(repo, reason, bundled)
        failed = self._hub_failures.get(repo)
        if failed is None or time.monotonic() - failed[0] > HUB_RETRY_S:
            try:
                pipe = self._pipelines.get_or_build(
                    ("hub", repo), lambda: self._serving(_load_from_hub(repo))
                )
                return Selection(pipe, f"Hub model {repo}", repo)
            except ModelLoadError as err:
                self._hub_failures[repo] = (time.monotonic(), str(err))
        return self._fall_back(repo, self._hub_failures[repo][1], bundled)

    def _fall_back(self, repo: str, reason: str, bundled: dict[str, Bundled]) -> Selection:
        fallback = self._fallback(repo, bundled)
        if fallback is None:
            raise ModelLoadError(f"{reason}; and no bundled model is available as a fallback")
        notice = f"Could not load `{repo}` ({reason}). Using the bundled **{fallback.name}** model instead."
        return self._bundled(fallback, notice)

    @staticmethod
    def _fallback(repo: str, bundled: dict[str, Bundled]) -> Bundled | None:
        usable = [b for b in bundled.values() if b.available]
        same_task = [b for b in usable if b.name.lower() in repo.lower()]
        return (same_task or usable or [None])[0]

    def _serving(self, pipe: DiffMICPipeline) -> DiffMICPipeline:
        """The pipeline requests use: batched through the registry's batcher when batching is on."""
        return BatchedPipeline(pipe.model, self.batcher) if self.batcher is not None else pipe


def _load_from_hub(repo: str) -> DiffMICPipeline:
    """Download (or find in the Hugging Face cache) a Hub repo and load it."""
    return DiffMICPipeline.from_pretrained(resolve_folder(repo), device=model_device())


def warm_up(pipe: DiffMICPipeline) -> None:
    """Run one tiny prediction and import the Grad-CAM code, so the first click is fast."""
    size = pipe.config.input_size
    pipe(Image.fromarray(np.full((size, size, 3), 128, np.uint8)), WARM_UP)
    import pytorch_grad_cam  # noqa: F401  (slow first import)
