"""Which models the app can offer, and a thread-safe cache of the loaded ones.

A model choice is either a bundled task (``fundus``, ``derm``, ``placenta``: ``weights/<task>/``) or a
Hugging Face Hub repo id (``org/name``). A repo id is tried on the Hub first; when that fails (the Hub
cannot be reached, the repo is unknown, private or gated, the files are broken) the bundled model of
the same task (or the first available one) is used instead, and ``Selection.notice`` says so. Hub
failures are remembered for a minute so an offline Space does not wait on the network at every click.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffmic.hub import CONFIG_NAME, WEIGHTS_NAME, ModelLoadError, is_repo_id, resolve_folder
from diffmic.model import DiffMIC

from .settings import TASKS, Settings

HUB_RETRY_S = 60.0
MAX_CACHED = 4


@dataclass(frozen=True)
class Bundled:
    """A bundled model folder and whether it can be loaded."""

    name: str
    folder: Path
    problem: str | None  # None when config.json and model.safetensors are present

    @property
    def available(self) -> bool:
        """True when both files are present."""
        return self.problem is None


class LoadedModel:
    """A loaded model and a private copy of it for Grad-CAM (cached and shared by all requests)."""

    def __init__(self, model: DiffMIC, source: str):
        self.model = model.eval()
        self.source = source
        self._explainer: DiffMIC | None = None
        self._lock = threading.Lock()

    def grad_cam(self, image: np.ndarray, class_index: int, network: str = "global") -> np.ndarray:
        """Grad-CAM heat map (S, S) of one image for a class, computed on a private copy of the model.

        Grad-CAM registers hooks on a layer; on the shared model the hooks would also see the forward
        passes of other requests, so it runs on a copy, one request at a time.
        """
        from diffmic.explain import grad_cam

        with self._lock:
            if self._explainer is None:
                self._explainer = copy.deepcopy(self.model).eval()
            x = self._explainer.preprocess(image)[0]
            return grad_cam(self._explainer, x, class_index, network=network)


@dataclass(frozen=True)
class Selection:
    """The model to use for a request, and a notice for the page (e.g. that the Hub fell back)."""

    loaded: LoadedModel
    notice: str | None = None

    @property
    def model(self) -> DiffMIC:
        """The DiffMIC itself."""
        return self.loaded.model


def _is_repo_id(text: str) -> bool:
    """A Hub repo id that is not also a local path."""
    return is_repo_id(text) and not Path(text).exists()


class ModelRegistry:
    """Bundled models, Hub models and a small LRU cache of loaded models (safe across threads)."""

    def __init__(self, settings: Settings, max_cached: int = MAX_CACHED):
        self.settings = settings
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()
        self._hub_failures: dict[str, tuple[float, str]] = {}

    # ------------------------------------------------------------------ what is offered
    def bundled(self) -> list[Bundled]:
        """The known tasks plus any other model folder under the weights folder, in a stable order."""
        root = self.settings.weights_dir
        names = list(TASKS)
        if root.is_dir():
            names += sorted(
                p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file() and p.name not in TASKS
            )
        out = []
        for name in names:
            folder = root / name
            shown = f"{root.name}/{name}"
            if not folder.is_dir():
                problem = f"{shown}/ not found"
            elif not (folder / CONFIG_NAME).is_file():
                problem = f"{shown}/ has no {CONFIG_NAME}"
            elif not (folder / WEIGHTS_NAME).is_file():
                problem = f"{shown}/ has no {WEIGHTS_NAME}"
            else:
                problem = None
            out.append(Bundled(name, folder, problem))
        return out

    def available(self) -> list[str]:
        """Names of the bundled models that can be loaded."""
        return [b.name for b in self.bundled() if b.available]

    def choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a dropdown: the bundled models, then the configured Hub repo."""
        out = []
        for b in self.bundled():
            what = TASKS.get(b.name, "custom model")
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

    def timesteps(self, choice: str) -> int | None:
        """T of a bundled model (read from its config.json, no weights loaded); None if unknown."""
        from diffmic.config import ConfigError, DiffMICConfig

        for b in self.bundled():
            if b.name == choice and b.available:
                try:
                    return DiffMICConfig.load(b.folder / CONFIG_NAME).timesteps
                except ConfigError:
                    return None
        return None

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
            return Selection(self._bundled(bundled[choice]))
        return self._hub(choice, bundled)

    def _bundled(self, b: Bundled) -> LoadedModel:
        if b.problem:
            raise ModelLoadError(
                f"the bundled {b.name} model is missing ({b.problem}); it may still be training"
            )
        stamp = (b.folder / WEIGHTS_NAME).stat().st_mtime_ns  # retrained weights are picked up
        return self._cached(
            ("bundled", str(b.folder), stamp),
            lambda: LoadedModel(DiffMIC.from_pretrained(b.folder), f"bundled {b.name} model"),
        )

    def _hub(self, repo: str, bundled: dict[str, Bundled]) -> Selection:
        if not _is_repo_id(repo):
            reason = (
                f"{repo!r} is neither a bundled model ({', '.join(bundled)}) nor a Hub repo id like org/name"
            )
            return self._fall_back(repo, reason, bundled)
        failed = self._hub_failures.get(repo)
        if failed is None or time.monotonic() - failed[0] > HUB_RETRY_S:
            try:
                return Selection(self._cached(("hub", repo), lambda: _load_from_hub(repo)))
            except ModelLoadError as err:
                self._hub_failures[repo] = (time.monotonic(), str(err))
        return self._fall_back(repo, self._hub_failures[repo][1], bundled)

    def _fall_back(self, repo: str, reason: str, bundled: dict[str, Bundled]) -> Selection:
        fallback = self._fallback(repo, bundled)
        if fallback is None:
            raise ModelLoadError(f"{reason}; and no bundled model is available as a fallback")
        notice = f"Could not load `{repo}` ({reason}). Using the bundled **{fallback.name}** model instead."
        return Selection(self._bundled(fallback), notice)

    @staticmethod
    def _fallback(repo: str, bundled: dict[str, Bundled]) -> Bundled | None:
        usable = [b for b in bundled.values() if b.available]
        same_task = [b for b in usable if b.name.lower() in repo.lower()]
        return (same_task or usable or [None])[0]

    def _cached(self, key: tuple, build) -> LoadedModel:
        """The cached model of ``key``, built at most once at a time per key."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            loaded = build()
            with self._lock:
                self._cache[key] = loaded
                while len(self._cache) > self.max_cached:
                    self._cache.popitem(last=False)
            return loaded


def _load_from_hub(repo: str) -> LoadedModel:
    """Download (or find in the Hugging Face cache) a Hub repo and load it."""
    return LoadedModel(DiffMIC.from_pretrained(resolve_folder(repo)), f"Hub model {repo}")


def warm_up(loaded: LoadedModel) -> None:
    """Run one tiny prediction and import the Grad-CAM code, so the first click is fast."""
    size = loaded.model.config.image_size
    image = np.full((size, size, 3), 128, np.uint8)
    with torch.inference_mode():
        loaded.model.predict(image, sampler="ddim", steps=2, samples=1, seed=0)
    import pytorch_grad_cam  # noqa: F401  (slow first import)
