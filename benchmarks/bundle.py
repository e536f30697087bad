"""Bundle trained runs as the demo weights, with model cards of the measured figures.

``RUNS/<task>`` → ``weights/<task>`` (DiffMIC) and ``RUNS/cnn_<task>`` → ``weights/baselines/<task>`` (the
plain-CNN baseline). Weights are stored as float16 safetensors (cast back to float32 on loading) to fit
the repository's size budget. The card records the data, the one training command, the wall-clock
time, what was fitted on validation data, and the figures of ``benchmarks/accuracy.py --out`` and
``benchmarks/faithfulness.py --out`` when given.

    python benchmarks/bundle.py --runs /path/to/runs [--accuracy acc.json] [--faithfulness faith.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import METHODS, comparisons  # noqa: E402
from diffmic.baseline import RECIPE_FIELDS  # noqa: E402
from diffmic.data.synthetic import GENERATORS  # noqa: E402
from diffmic.hub import EVALUATION_NAME, default_model_card  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402
from diffmic.tasks import DISCLAIMER, generated_tasks  # noqa: E402


def minutes(seconds: float | None) -> str:
    """'95 min' or 'unknown'."""
    return f"{seconds / 60:.0f} min" if seconds else "unknown"


def stage_summary(log: dict) -> str:
    """How many epochs each stage ran, from the training log."""
    epochs: dict[str, int] = {}
    for h in log.get("history", []):
        if "epoch" in h:
            epochs[h["stage"]] = max(epochs.get(h["stage"], 0), h["epoch"])
    return ", ".join(f"{stage} {n} epochs" for stage, n in epochs.items())


def caps(log: dict) -> str:
    """The epoch caps a run was trained with, as CLI flags."""
    tc = log.get("train_config", {})
    flags = ("global_epochs", "local_epochs", "diffusion_epochs")
    return " ".join(f"--{k.replace('_', '-')} {tc[k]}" for k in flags if k in tc)


def run_dir(log: dict, task: str) -> str:
    """The run folder of the logged training command (its ``--out``), or ``runs/<task>``."""
    words = log.get("command", "").split()
    return words[words.index("--out") + 1] if "--out" in words[:-1] else f"runs/{task}"


def data_sentence(log: dict, size: int) -> str:
    """How many generated images trained and validated the model (the log's ``data``; older logs: 3,000)."""
    data = log.get("data")
    if not data:
        return (
            f"3,000 generated images at {size} px (85 % training, 15 % validation for early stopping, "
            "selection, calibration and every choice below)"
        )
    return (
        f"{data['train'] + data['validation']:,} generated images at {size} px ({data['train']:,} training, "
        f"{data['validation']:,} validation for early stopping, selection, calibration and every choice "
        "below)"
    )


def cnn_sentence(cnn_log: dict) -> str:
    """How the plain-CNN baseline came to be."""
    if cnn_log.get("exported_from"):
        return (
            " The plain-CNN baseline is DiffMIC's global network as stage 1 left it (the same network "
            f"trained by the same recipe; {cnn_log.get('epoch', '?')} epochs), saved as"
            " a classifier of its own."
        )
    scores = [h["score"] for h in cnn_log.get("history", []) if "score" in h]
    best = (
        f", best validation macro-F1 {max(scores):.3f} at epoch {scores.index(max(scores)) + 1}"
        if scores
        else ""
    )
    return (
        f" The plain CNN, trained separately: {minutes(cnn_log.get('train_seconds'))} "
        f"({cnn_log.get('epoch', '?')} epochs{best})."
    )


def same_recipe(log: dict, cnn_log: dict) -> bool:
    """Whether the baseline trained on DiffMIC's data by its global stage's logged settings."""
    recipe, settings = cnn_log.get("recipe", {}), log.get("train_config", {})
    shared = [k for k in RECIPE_FIELDS if k in settings]
    return (
        bool(shared)
        and recipe.get("data") == log.get("data")
        and all(recipe.get(k) == settings[k] for k in shared)
    )


def cnn_command(task: str, log: dict, cnn_log: dict) -> str:
    """The command that makes the bundled baseline."""
    run = run_dir(log, task)
    if cnn_log.get("exported_from"):
        return f"python -m diffmic.baseline --from-model {run} --out runs/cnn_{task}  # baseline"
    if cnn_log.get("command"):  # as it was run (recorded by the trainer; a comment of its own is kept)
        command = cnn_log["command"]
        return command if "#" in command else f"{command}  # the plain-CNN baseline"
    if same_recipe(log, cnn_log):
        return (
            f"python -m diffmic.baseline --like {run} --out runs/cnn_{task}  # the plain-CNN baseline: "
            "the same images, input and recipe as DiffMIC's global stage"
        )
    return f"python -m diffmic.baseline --task {task} --out runs/cnn_{task}   # the plain-CNN baseline"


def card(task: str, model: DiffMIC, log: dict, cnn_log: dict, accuracy: dict, faith: dict) -> str:
    """The model card body of one bundled model."""
    cfg = model.config
    lines = [
        "## Data",
        "",
        f"Synthetic **{task}** images from `diffmic.data.synthetic` ({GENERATORS[task].description}). "
        f"{data_sentence(log, cfg.input_size)}; the test figures use held-out generated images whose indices "
        "were never used in training or validation.",
        "",
        "## Training",
        "",
        "```bash",
        log.get("command") or f"python -m diffmic train --task {task} --out runs/{task} {caps(log)}".rstrip(),
        cnn_command(task, log, cnn_log),
        "```",
        "",
        "CPU, 2 cores: "
        f"{minutes(log.get('train_seconds'))} wall-clock for DiffMIC "
        f"({stage_summary(log)}; each stage stops when its validation score has not improved for "
        f"{log.get('train_config', {}).get('patience', '?')} validations, or at its epoch cap)."
        + cnn_sentence(cnn_log)
        + " Best EMA weights by validation macro-F1, stored as float16.",
        "",
        "Fitted on validation data: fusion weights (global, local) = "
        f"({cfg.fusion_weights[0]:.2f}, {cfg.fusion_weights[1]:.2f}); ROI map `{cfg.roi_map}`; softmax "
        f"temperature {cfg.temperature:.3f} of the app's estimator (DDPM, T = {cfg.timesteps}, 8 chains); "
        f"evidence map against `{cfg.saliency_contrast}`; Grad-CAM variant `{cfg.cam_method}` on stage "
        f"{cfg.cam_stage}.",
        "",
    ]
    if accuracy:
        meta = accuracy.get("_meta", {})
        lines += [
            "## Held-out test figures",
            "",
            f"{meta.get('n', '?')} images; DiffMIC with {meta.get('sampler', 'ddpm').upper()} "
            f"({meta.get('steps') or 'all T'} steps, {meta.get('samples', 1)} chains per image, their "
            f"probabilities averaged); kappa {meta.get('kappa', '')}.",
            "",
            "| method | accuracy | macro-F1 | kappa | ECE |",
            "|---|---|---|---|---|",
        ]
        for m in METHODS:
            if m in accuracy:
                r = accuracy[m]
                cells = " | ".join(f"{r[k]:.3f}" for k in ("accuracy", "macro_f1", "kappa", "ece"))
                lines.append(f"| {m} | {cells} |")
        if "ceiling" in accuracy:
            lines.append(
                f"| best possible (Bayes rule on what each image shows) | {accuracy['ceiling']:.3f} | | | |"
            )
        lines += [f"\n{sentence}" for sentence in comparisons(accuracy)]
        lines += [
            "",
            "`cnn`: the bundled plain classifier (`weights/baselines/`); `global`/`local`/`fused`: the DCG "
            "priors alone; `diffmic_single`: one chain per image instead of 8 averaged.",
            "",
        ]
    if faith:
        lines += [
            "## Explanations (pointing game against the lesion masks, test images)",
            "",
            "| CAM of the answer | top-attention ROI | any ROI | Grad-CAM (app) |",
            "|---|---|---|---|",
            "| {saliency:.3f} | {patch:.3f} | {any_patch:.3f} | {gradcam:.3f} |".format(**faith),
            "",
        ]
    lines += [
        "## Intended use",
        "",
        f"Teaching and demonstrating DiffMIC in DiffMIC Explorer. {DISCLAIMER} The images are procedurally "
        "generated; nothing here has been validated on patients.",
        "",
    ]
    return default_model_card(cfg, "\n".join(lines))


def evaluation(accuracy: dict) -> dict:
    """What the app's Learn tab reads (``evaluation.json``): each method's held-out accuracy and macro-F1,
    and the best accuracy possible on those images (``ceiling``)."""
    meta = accuracy.get("_meta", {})
    out = {k: meta.get(k) for k in ("n", "sampler", "steps", "samples")}
    for key in ("accuracy", "macro_f1"):
        out[key] = {m: accuracy[m][key] for m in METHODS if m in accuracy}
    if "ceiling" in accuracy:
        out["ceiling"] = accuracy["ceiling"]
    return out


def read_json(path: Path) -> dict:
    """A JSON file's content, or {} when it does not exist."""
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, required=True, help="folder holding <task>/ and cnn_<task>/ runs")
    p.add_argument("--tasks", nargs="+", default=generated_tasks())
    p.add_argument("--accuracy", type=Path)
    p.add_argument("--faithfulness", type=Path)
    p.add_argument("--cards-only", action="store_true", help="rewrite the cards of weights/ without copying")
    args = p.parse_args()
    acc = read_json(args.accuracy) if args.accuracy else {}
    faith = read_json(args.faithfulness) if args.faithfulness else {}
    for task in args.tasks:
        run, dest = args.runs / task, ROOT / "weights" / task
        model = DiffMIC.from_pretrained(dest if args.cards_only else run)
        log = read_json(run / "train_log.json")
        cnn_log = read_json(args.runs / f"cnn_{task}" / "train_log.json")
        text = card(task, model, log, cnn_log, acc.get(task, {}), faith.get(task, {}))
        if acc.get(task):
            dest.mkdir(parents=True, exist_ok=True)
            (dest / EVALUATION_NAME).write_text(json.dumps(evaluation(acc[task]), indent=2) + "\n")
        if args.cards_only:
            (dest / "README.md").write_text(text)
            continue
        model.save_pretrained(dest, card=text, half=True)
        for extra in run.glob("ood.safetensors"):  # the distribution check, when fitted
            shutil.copy(extra, dest / extra.name)
        cnn_src, cnn_dest = args.runs / f"cnn_{task}", ROOT / "weights" / "baselines" / task
        if (cnn_src / "model.safetensors").is_file():
            cnn_dest.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", "model.safetensors"):
                shutil.copy(cnn_src / name, cnn_dest / name)
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 2**20
        print(f"{dest}: {size:.1f} MB")


if __name__ == "__main__":
    main()
