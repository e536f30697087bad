"""Where the app finds its models and examples, and the defaults of its controls (read from the environment).

| Variable | Default | Meaning |
| --- | --- | --- |
| ``DIFFMIC_WEIGHTS_DIR`` | ``<repo>/weights`` | bundled models, one folder per task |
| ``DIFFMIC_ASSETS_DIR`` | ``<repo>/assets`` | example images, ``<task>/<label>_<n>.png`` |
| ``DIFFMIC_MODEL_REPO`` | unset | Hub repo id selected by default (bundled weights are the fallback) |
| ``DIFFMIC_TORCH_THREADS`` | ``1`` | torch threads per process (requests run in parallel instead) |
| ``DIFFMIC_BATCHING`` | ``1`` (``0`` on ZeroGPU) | concurrent Diagnose and ``/predict`` requests in batches |
| ``DIFFMIC_TRIM_EVERY_S`` | ``10`` | seconds between giving freed heap memory back (``0``: never) |
| ``DIFFMIC_MAX_SESSIONS`` | ``1000`` | sessions whose state is kept (the least recently used goes first) |
| ``GRADIO_SERVER_PORT`` | ``7860`` | port of ``python app.py`` |
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from diffmic.options import APP_DEFAULT

REPO_ROOT = Path(__file__).resolve().parent.parent

# Defaults of the controls. Diagnose runs one image the paper's way (APP_DEFAULT: DDPM, all T steps,
# 8 chains); Evaluate scores with the same (DEFAULT_OPTIONS), so its scores are those of Diagnose's answers.
DEFAULT_OPTIONS = APP_DEFAULT
DEFAULT_SAMPLER = APP_DEFAULT.sampler.upper()  # also read by benchmarks/app_latency.py
DEFAULT_SAMPLES = APP_DEFAULT.samples
DEFAULT_SEED = APP_DEFAULT.seed
DEFAULT_DDIM_STEPS = 50
MAX_SAMPLES = 64
MAX_EVAL_SAMPLES = 16
MAX_STEPS = 1000
GENERATED_TEST_IMAGES = 100  # Evaluate's "try it on generated test images"

# Serving.
STREAM_INTERVAL_S = 0.1  # at most ~10 streamed updates per second
CONCURRENCY_LIMIT = 2
# With batching, the Diagnose run and /predict hand their work to diffmic.batching's workers (BATCH_WORKERS
# batches at once, up to MAX_BATCH requests each, a wait of at most BATCH_WAIT_S for a batch to fill), so
# that many of them may wait at once.
BATCHED_CONCURRENCY = 16
BATCHED_ENDPOINTS = ("diagnose", "predict")
MAX_BATCH = 8
BATCH_WAIT_S = 0.02
BATCH_WORKERS = 2
QUEUE_SIZE = 32
MAX_FILE_SIZE = "20mb"
EVAL_MAX_IMAGES = 2000
TRIM_EVERY_S = 10.0  # freed heap memory handed back this often (app.heap)
# Gradio keeps every session's copy of the page's configuration (about 0.26 MB) and its state (Diagnose's maps
# and figure data: about 1.6 MB in all after one run, benchmarks/sessions.py) until this many newer sessions
# push it out (Gradio's default is 10,000: up to 16 GB).
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Settings:
    """Paths and defaults for one app instance."""

    weights_dir: Path
    assets_dir: Path
    model_repo: str | None  # DIFFMIC_MODEL_REPO
    torch_threads: int
    batching: bool = True  # DIFFMIC_BATCHING
    trim_every_s: float = TRIM_EVERY_S  # DIFFMIC_TRIM_EVERY_S (app.heap)
    max_sessions: int = MAX_SESSIONS  # DIFFMIC_MAX_SESSIONS


def load_settings() -> Settings:
    """Read the settings from the environment (at call time, so tests can point at temporary folders)."""
    repo = os.environ.get("DIFFMIC_MODEL_REPO", "").strip() or None
    return Settings(
        weights_dir=Path(os.environ.get("DIFFMIC_WEIGHTS_DIR") or REPO_ROOT / "weights").expanduser(),
        assets_dir=Path(os.environ.get("DIFFMIC_ASSETS_DIR") or REPO_ROOT / "assets").expanduser(),
        model_repo=repo,
        torch_threads=count("DIFFMIC_TORCH_THREADS", 1),
        batching=batching_enabled(),
        trim_every_s=seconds("DIFFMIC_TRIM_EVERY_S", TRIM_EVERY_S),
        max_sessions=count("DIFFMIC_MAX_SESSIONS", MAX_SESSIONS),
    )


def count(variable: str, default: int) -> int:
    """A whole number >= 1 from the environment (``default`` when unset or not one)."""
    value = os.environ.get(variable, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else default


def seconds(variable: str, default: float) -> float:
    """A number of seconds >= 0 from the environment (``default`` when unset or not a number)."""
    try:
        value = float(os.environ.get(variable, "").strip() or default)
    except ValueError:
        return default
    return value if value >= 0 and value != float("inf") else default


def batching_enabled() -> bool:
    """``DIFFMIC_BATCHING`` (1/0, on/off); unset: on, except on ZeroGPU, where the GPU is attached only
    inside each request's own ``spaces.GPU`` call and so cannot serve a shared worker."""
    value = os.environ.get("DIFFMIC_BATCHING", "").strip().lower()
    if value:
        return value not in ("0", "off", "false", "no")
    try:
        return importlib.util.find_spec("spaces") is None
    except ValueError:  # a ``spaces`` module without a spec, put in sys.modules by hand
        return False


def server_port() -> int:
    """The port of ``python app.py``: ``GRADIO_SERVER_PORT`` or 7860."""
    value = os.environ.get("GRADIO_SERVER_PORT", "").strip()
    return int(value) if value.isdigit() else 7860
