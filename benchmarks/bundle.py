"""Bundle trained runs as the demo weights: ``runs/<task>`` → ``weights/<task>`` with a model card.

Weights are stored as float16 safetensors (cast back to float32 on loading) to fit the repository's
size budget; the card records the data, the training command and time, and the measured figures
from ``benchmarks/accuracy.py --out`` and ``benchmarks/faithfulness.py --out`` when given.

    python benchmarks/bundle.py --tasks fundus derm placenta [--accuracy acc.json] [--faithfulness faith.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.data.synthetic import TASKS  # noqa: E402
from diffmic.hub import DISCLAIMER, default_model_card, load_pretrained  # noqa: E402


def train_command(task: str, log: dict, cfg: dict) -> str:
    """The command that reproduces the run."""
    tc = log.get("train_config", {})
    parts = [
        f"python -m diffmic train --task {task} --out runs/{task} --train-size 3000",
        f"--image-size {cfg['image_size']} --backbone {cfg['global_backbone']}",
        f"--local-backbone {cfg['local_backbone']} --cam-size {cfg['cam_size']}",
        f"--crop-size {cfg['crop_size']} --num-crops {cfg['num_crops']} --dcg-epochs {tc.get('dcg_epochs')}",
        f"--diffusion-epochs {tc.get('diffusion_epochs')} --batch-size {tc.get('batch_size')}",
        f"--seed {tc.get('seed')}",
    ]
    return " \\\n  ".join(parts)


def card(
    task: str,
    model,
    log: dict,
    accuracy: dict | None,
    faithfulness: dict | None,
    minutes: float | None = None,
) -> str:
    """The model card body for one bundled model."""
    cfg = model.config.to_dict()
    spec = TASKS[task]
    seconds = minutes * 60 if minutes else log.get("train_seconds")
    lines = [
        "## Data",
        "",
        f"Synthetic **{task}** images from `diffmic.data.synthetic` ({spec.description}). "
        "3,000 generated images (85 % training, 15 % validation for model selection); the test figures "
        "below use held-out generated images whose indices were never used in training or validation.",
        "",
        "## Training",
        "",
        "```bash",
        train_command(task, log, cfg),
        "```",
        "",
        f"CPU, 2 cores shared with other jobs{f', {seconds / 60:.0f} min wall-clock' if seconds else ''}. "
        "Best EMA weights by validation macro-F1; "
        f"softmax temperature calibrated on validation data: {model.config.temperature:.3f}. "
        "Weights stored as float16.",
        "",
    ]
    if accuracy:
        meta = accuracy.get("_meta", {})
        lines += [
            "## Held-out test figures",
            "",
            f"{meta.get('n', '?')} images; DiffMIC with {meta.get('sampler', 'ddpm')} "
            f"({meta.get('steps') or 'T = 1000'} steps, {meta.get('samples', 1)} samples per image, "
            f"probabilities averaged); kappa {meta.get('kappa', '')}.",
            "",
            "| method | accuracy | macro-F1 | kappa | ECE |",
            "|---|---|---|---|---|",
        ]
        for m in ("cnn", "global", "local", "fused", "diffmic", "diffmic_single"):
            if m in accuracy:
                r = accuracy[m]
                lines.append(
                    f"| {m} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['kappa']:.3f} | {r['ece']:.3f} |"
                )
        lines += [
            "",
            "`cnn`: a plain classifier with the same backbone, data and epochs; `global`/`local`/`fused`: "
            "the DCG priors alone; `diffmic_single`: one chain per image instead of the samples averaged.",
            "",
        ]
    if faithfulness:
        lines += [
            "## Explanations (pointing game against the lesion masks)",
            "",
            "| global saliency (CAM of the answer) | top ROI patch | Grad-CAM++ (stride-16 stage) |",
            "|---|---|---|",
            "| {saliency:.3f} | {patch:.3f} | {gradcam:.3f} |".format(**faithfulness),
            "",
        ]
    lines += [
        "## Intended use",
        "",
        f"Teaching and demonstrating DiffMIC in DiffMIC Explorer. {DISCLAIMER} The images are procedurally "
        "generated; nothing here has been validated on patients.",
        "",
    ]
    return default_model_card(model.config, "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["fundus", "derm", "placenta"])
    p.add_argument("--accuracy", type=Path)
    p.add_argument("--faithfulness", type=Path)
    p.add_argument("--cards-only", action="store_true", help="rewrite the cards of weights/ without copying")
    p.add_argument("--minutes", nargs="*", default=[], help="task=MIN: training time where the log lacks it")
    args = p.parse_args()
    acc = json.loads(args.accuracy.read_text()) if args.accuracy else {}
    faith = json.loads(args.faithfulness.read_text()) if args.faithfulness else {}
    for task in args.tasks:
        run, dest = ROOT / "runs" / task, ROOT / "weights" / task
        model = load_pretrained(dest if args.cards_only else run)
        log_path = run / "train_log.json"
        log = json.loads(log_path.read_text()) if log_path.is_file() else {}
        minutes = dict(item.split("=") for item in args.minutes).get(task)
        text = card(task, model, log, acc.get(task), faith.get(task), float(minutes) if minutes else None)
        model.save_pretrained(dest, card=text, half=True) if not args.cards_only else (
            dest / "README.md"
        ).write_text(text)
        print(f"{dest}: {sum(f.stat().st_size for f in dest.iterdir()) / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
