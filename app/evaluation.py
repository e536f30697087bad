"""Handler of the Evaluate tab: a zipped labelled dataset in, metrics, a confusion matrix and a table out.

The zip is checked and extracted by ``diffmic.data.archive.extracted_zip`` (into a temporary folder that
is removed afterwards), read by ``diffmic.data.readers.read_dataset`` (a folder per class, ISIC 2018 or
APTOS 2019 CSV + images), and scored by ``diffmic.evaluate.evaluate``; its tqdm bar drives the page's
progress bar.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from diffmic.data.datasets import FileDataset
from diffmic.hub import ModelLoadError
from diffmic.imageio import ImageLoadError

from . import figures, report
from .assets import class_index
from .diagnose import UserError, check_params
from .models import ModelRegistry
from .outputs import new_run_folder
from .settings import DEFAULT_DDIM_STEPS, EVAL_MAX_IMAGES, MAX_STEPS
from .widgets import disclaimer, error_box, model_dropdown, show_error

log = logging.getLogger(__name__)

METHOD_NAMES = {
    "diffmic": "**DiffMIC**",
    "fused": "fused prior",
    "global": "global prior",
    "local": "local prior",
}
TABLE_HEADERS = ["file", "true class", "predicted class", "correct"]
N_OUTPUTS = 5
COLUMN_WIDTHS = {4: ["46%", "21%", "21%", "12%"], 5: ["38%", "18%", "18%", "14%", "12%"]}


class NamedFileDataset(FileDataset):
    """A FileDataset whose read errors name the file (so the page can say which image is broken)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            return super().__getitem__(i)
        except ImageLoadError as err:
            raise UserError(f"{Path(self.paths[i]).name}: {err}") from err


def dataset_root(folder: Path) -> Path:
    """Descend through a single top-level folder (a zipped folder) to where the dataset starts."""
    while True:
        children = [p for p in folder.iterdir() if not p.name.startswith(".")]
        if len(children) == 1 and children[0].is_dir():
            folder = children[0]
        else:
            return folder


def map_labels(dataset_classes: list[str], model_classes: list[str]) -> list[int | None]:
    """For each dataset class, the index of the model class with the same name (loosely compared), or None."""
    return [class_index(name, model_classes) for name in dataset_classes]


def metrics_markdown(result: dict[str, Any], model_source: str, skipped: str) -> str:
    """Headline metrics of DiffMIC and of its priors."""
    kappa = "quadratic-weighted κ" if result["diffmic"].get("kappa_weights") == "quadratic" else "Cohen's κ"
    lines = [
        f"### Accuracy {result['diffmic']['accuracy']:.3f} · macro-F1 {result['diffmic']['macro_f1']:.3f} · "
        f"{kappa} {result['diffmic']['kappa']:.3f}",
        f"{result['n']} images · {model_source} · {str(result['sampler']).upper()}, {result['steps']} steps, "
        f"{result['samples']} sample(s)" + (f" · {skipped}" if skipped else ""),
        "",
        f"| method | accuracy | macro-F1 | {kappa} | ECE |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in ("diffmic", "fused", "global", "local"):
        m = result[key]
        lines.append(
            f"| {METHOD_NAMES[key]} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | "
            f"{m['kappa']:.3f} | {m['ece']:.3f} |"
        )
    lines += ["", report.disclaimer_markdown()]
    return "\n".join(lines)


class Evaluation:
    """The Evaluate tab's handler, bound to a model registry."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def run(
        self,
        zip_file: Any,
        model_choice: str,
        sampler: str,
        steps: Any,
        samples: Any,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple:
        """Metrics (Markdown), confusion matrix, per-image table, its CSV, and the error box."""
        try:
            return self._run(zip_file, model_choice, sampler, steps, samples, progress)
        except (UserError, ModelLoadError, ValueError, FileNotFoundError) as err:
            message = str(err)
        except Exception as err:
            log.exception("evaluation failed")
            message = f"the evaluation failed ({type(err).__name__}: {err})"
        gr.Warning(message)
        return show_error(N_OUTPUTS, message)

    def _run(
        self, zip_file: Any, model_choice: str, sampler: str, steps: Any, samples: Any, progress
    ) -> tuple:
        from diffmic.data.archive import extracted_zip
        from diffmic.evaluate import evaluate

        path = zip_file.get("path") if isinstance(zip_file, dict) else zip_file
        if not path:
            raise UserError("upload a .zip of a labelled dataset first")
        selection = self.registry.get(model_choice)
        model = selection.model
        params = check_params(model, sampler, steps, samples, 0)
        progress(0, desc="checking and extracting the zip")
        with extracted_zip(path) as folder:
            root = dataset_root(folder)
            dataset, rel_paths, skipped = self._dataset(
                root, model.config.class_names, model.config.image_size
            )
            result = evaluate(
                model,
                dataset,
                sampler=params.sampler,
                steps=params.steps,
                samples=params.samples,
                seed=0,
                batch_size=16,
                progress=True,
            )
        names = model.config.class_names
        headers, rows = per_image_rows(result, rel_paths, names)
        csv_path = new_run_folder("evaluate") / "diffmic-evaluation.csv"
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            writer.writerows(rows)
        notice = f"\n\n⚠️ {selection.notice}" if selection.notice else ""
        return (
            metrics_markdown(result, selection.loaded.source, skipped) + notice,
            figures.confusion_figure(result["diffmic"]["confusion_matrix"], names),
            gr.update(
                value=[[*r[:-1], "✓" if r[-1] else "✗"] for r in rows],
                headers=headers,
                column_widths=COLUMN_WIDTHS[len(headers)],
            ),
            str(csv_path),
            gr.update(value="", visible=False),
        )

    @staticmethod
    def _dataset(root: Path, model_classes: list[str], size: int) -> tuple[NamedFileDataset, list[str], str]:
        from diffmic.data.readers import read_dataset

        data = read_dataset(root)
        mapping = map_labels(list(data.class_names), model_classes)
        keep = [r for r in data.records if mapping[r.label] is not None]
        unknown = sorted({data.class_names[r.label] for r in data.records if mapping[r.label] is None})
        if not keep:
            raise UserError(
                f"none of the dataset's classes ({', '.join(data.class_names)}) is a class of this model "
                f"({', '.join(model_classes)})"
            )
        if len(keep) > EVAL_MAX_IMAGES:
            raise UserError(f"the dataset has {len(keep)} images; the limit here is {EVAL_MAX_IMAGES}")
        skipped = ""
        if unknown:
            n = len(data.records) - len(keep)
            skipped = f"{n} image(s) of classes this model does not know were skipped ({', '.join(unknown)})"
        paths = [r.path for r in keep]
        labels = [int(mapping[r.label]) for r in keep]  # type: ignore[arg-type]
        rel = [p.relative_to(root).as_posix() for p in paths]
        return NamedFileDataset(paths, labels, size), rel, skipped


def per_image_rows(
    result: dict[str, Any], rel_paths: list[str], names: list[str]
) -> tuple[list[str], list[list]]:
    """Table headers and one row per image: file, true class, predicted class, [probability,] correct."""
    probs = result.get("probabilities")  # per-image mean probabilities, when evaluate() provides them
    headers = TABLE_HEADERS[:3] + (["probability"] if probs is not None else []) + TABLE_HEADERS[3:]
    rows = []
    for i, (true, pred) in enumerate(zip(result["labels"], result["predictions"], strict=True)):
        extra = [round(float(probs[i][pred]), 4)] if probs is not None else []
        rows.append([rel_paths[i], names[true], names[pred], *extra, bool(true == pred)])
    return headers, rows


def build_evaluate_tab(evaluation: Evaluation, registry: ModelRegistry) -> None:
    """The Evaluate tab's layout and events (inside a gr.Tab)."""
    disclaimer()
    gr.Markdown(
        "Upload a **.zip** of a labelled dataset: one folder per class (`Moderate/img1.png`, …), an "
        "ISIC 2018 ground-truth CSV with its images, or an APTOS 2019 `train.csv` with "
        "`train_images/`. Class names must match the model's classes. The zip is checked before "
        "anything is extracted (no paths outside the archive, at most 5,000 files and 500 MB, no zip bombs)."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            archive = gr.File(
                label="Dataset (.zip)", file_types=[".zip"], type="filepath", elem_id="eval-zip"
            )
        with gr.Column(scale=2, min_width=360):
            model = model_dropdown(registry, "eval-model")
            with gr.Row():
                sampler = gr.Radio(["DDPM", "DDIM"], value="DDIM", label="Sampler")
                steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_DDIM_STEPS, step=1, label="Steps")
                samples = gr.Slider(1, 16, value=1, step=1, label="Samples per image")
            run = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
    error = error_box("eval-error")
    metrics = gr.Markdown("", elem_id="eval-metrics")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            confusion = gr.Plot(
                figures.empty_figure("Confusion matrix", 420), label="Confusion matrix", elem_id="confusion"
            )
        with gr.Column(scale=3, min_width=360):
            table = gr.Dataframe(
                headers=["file", "true class", "predicted class", "correct"],
                interactive=False,
                wrap=True,
                column_widths=["46%", "21%", "21%", "12%"],
                max_height=420,
                label="Per-image results",
                elem_id="eval-table",
            )
    table_csv = gr.File(label="Per-image results (CSV)", interactive=False, elem_id="eval-csv")
    run.click(
        evaluation.run,
        [archive, model, sampler, steps, samples],
        [metrics, confusion, table, table_csv, error],
        api_visibility="undocumented",
        api_name="evaluate",
        concurrency_limit=1,
        concurrency_id="evaluate",
    )
