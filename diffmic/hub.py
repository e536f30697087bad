"""Saving and loading model folders: ``config.json`` + ``model.safetensors`` + a model card (README.md),
and ``ood.safetensors`` (the distribution check, ``diffmic.ood``) when the model has one.

``load_folder`` takes a local folder or a Hugging Face Hub repo id. Weights are read only from
safetensors (never unpickled), and every way a checkpoint can be wrong — missing files, a truncated
file, tensors of the wrong shape, a checkpoint for another number of classes, a config that does not
match — ends in one ``ModelLoadError`` whose message says what is wrong. This module knows configs and
tensors, not networks: ``DiffMIC.from_pretrained`` builds the model from what it returns.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ConfigError, DiffMICConfig
from .tasks import DISCLAIMER

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
OOD_NAME = "ood.safetensors"  # the distribution check's statistics (optional)
EVALUATION_NAME = "evaluation.json"  # held-out figures measured on the bundled models (optional)
CARD_NAME = "README.md"
FOLDER_FILES = ["*.json", "*.safetensors", CARD_NAME]  # what is fetched from a Hub repo
PICKLE_NAMES = ("pytorch_model.bin", "model.pt", "model.pth", "ckpt.pth", "checkpoint.pt")


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message says why, in one line."""


def save_tensors(
    state: dict[str, torch.Tensor], path: str | Path, half: bool = False, **metadata: str
) -> None:
    """Write tensors as safetensors; ``half`` stores float32 as float16 (cast back on loading)."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if half:
        state = {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}
    save_file(state, str(path), metadata={"format": "pt", **metadata})


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file as float32 tensors; ModelLoadError when it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"missing file {path.name} in {path.parent}")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{path.name} is corrupt or truncated ({err})") from err
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}


def save_folder(
    folder: str | Path,
    config: DiffMICConfig,
    state: dict[str, torch.Tensor],
    card: str | None = None,
    half: bool = False,
) -> Path:
    """Write config.json, model.safetensors and README.md (``card`` or a default card) to ``folder``.

    ``half`` stores floating-point tensors as float16 (half the size; they are cast back to float32
    on loading), which is how the bundled demo weights fit the repository's size budget.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder / CONFIG_NAME)
    save_tensors(state, folder / WEIGHTS_NAME, half=half, model_type="diffmic")
    (folder / CARD_NAME).write_text(card if card is not None else default_model_card(config))
    return folder


def default_model_card(config: DiffMICConfig, body: str = "") -> str:
    """A Hub model card with YAML metadata, the classes and the disclaimer."""
    classes = ", ".join(config.class_names)
    return (
        "---\nlibrary_name: diffmic\nlicense: mit\npipeline_tag: image-classification\n"
        "tags:\n- diffmic\n- diffusion\n- medical-imaging\n---\n\n"
        f"# DiffMIC — {config.task}\n\n> **{DISCLAIMER}**\n\n"
        f"Classes ({config.num_classes}): {classes}. Input {config.input_size} px (global view "
        f"{config.image_size} px); backbones {config.global_backbone} (global), {config.local_backbone} "
        f"(local ROI patches), {config.encoder_backbone or 'shared with the DCG'} (denoiser image features); "
        f"T = {config.timesteps}.\n\n{body}"
    )


def is_repo_id(text: str) -> bool:
    """True for a syntactically valid Hub repo id ("org/name"), checked before any network call."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def resolve_folder(folder_or_repo: str | Path, revision: str | None = None, token: str | None = None) -> Path:
    """A local folder as is; otherwise download (or find in the cache) the Hub repo's files."""
    path = Path(folder_or_repo).expanduser()
    if path.is_dir():
        return path
    text = str(folder_or_repo)
    if path.exists():
        raise ModelLoadError(f"{text} is a file; give the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    if not is_repo_id(text):
        raise ModelLoadError(f"{text!r} is neither a local folder nor a valid Hub repo id (like 'org/name')")
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                text,
                revision=revision,
                token=token,
                allow_patterns=FOLDER_FILES,
                etag_timeout=10,
            )
        )
    except hf_errors.GatedRepoError as err:
        raise ModelLoadError(f"Hub repo {text} is gated: accept its terms and pass a token") from err
    except hf_errors.RepositoryNotFoundError as err:
        raise ModelLoadError(
            f"Hub repo {text} was not found (or it is private and no valid token was given)"
        ) from err
    except hf_errors.RevisionNotFoundError as err:
        raise ModelLoadError(f"Hub repo {text} has no revision {revision!r}") from err
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as err:
        raise ModelLoadError(
            f"cannot reach the Hugging Face Hub to fetch {text}, and it is not in the local cache"
        ) from err
    except Exception as err:  # network errors, timeouts, HTTP errors of any kind
        if isinstance(err, TimeoutError) or "Timeout" in type(err).__name__:
            raise ModelLoadError(f"timed out reaching the Hugging Face Hub for {text}") from err
        raise ModelLoadError(f"could not download {text} from the Hub: {type(err).__name__}: {err}") from err


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], config: DiffMICConfig) -> None:
    """Compare a checkpoint with the model built from its config; raise ModelLoadError on any mismatch."""
    expected = model.state_dict()
    head = state.get("denoiser.out.weight")
    if head is not None and head.shape[0] != config.num_classes:
        raise ModelLoadError(
            f"the weights are for {head.shape[0]} classes but config.json lists "
            f"{config.num_classes} ({', '.join(config.class_names)})"
        )
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
        raise ModelLoadError(
            "the weights do not match config.json: "
            + "; ".join(parts)
            + " — were they saved with other backbones?"
        )
    wrong = [
        f"{k}: weights {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise ModelLoadError(f"{len(wrong)} tensors have the wrong shape, e.g. {wrong[0]}")


def load_folder(
    folder_or_repo: str | Path, *, revision: str | None = None, token: str | None = None
) -> tuple[DiffMICConfig, dict[str, torch.Tensor]]:
    """The config and the weights (float32 tensors) of a local folder or a Hub repo id."""
    return read_folder(resolve_folder(folder_or_repo, revision, token))


def read_folder(folder: Path) -> tuple[DiffMICConfig, dict[str, torch.Tensor]]:
    """The config and the weights (float32 tensors) of a local model folder."""
    weights = folder / WEIGHTS_NAME
    try:
        config = DiffMICConfig.load(folder / CONFIG_NAME)
    except ConfigError as err:
        raise ModelLoadError(str(err)) from err
    if not weights.is_file():
        pickles = [n for n in PICKLE_NAMES if (folder / n).exists()]
        hint = (
            f"; found {pickles[0]}, a pickle file, which is never loaded (it could run code) — "
            "convert it to safetensors"
            if pickles
            else ""
        )
        raise ModelLoadError(f"missing weights file {WEIGHTS_NAME} in {folder}{hint}")
    return config, load_tensors(weights)


def push_folder(
    repo_id: str, write: Callable[[Path], object], private: bool = False, token: str | None = None
) -> str:
    """Create the repo if needed and upload the folder that ``write(folder)`` fills; returns the repo URL."""
    from huggingface_hub import HfApi

    if not is_repo_id(repo_id):
        raise ModelLoadError(f"{repo_id!r} is not a valid Hub repo id (like 'org/name')")
    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message="Upload DiffMIC model")
    return str(url)
