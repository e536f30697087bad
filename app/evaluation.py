"""Handlers of the Evaluate tab: a zipped labelled dataset, or generated test images, in; metrics, a
confusion matrix and a per-image table out.

The zip is checked and extracted by ``diffmic.data.archive.extracted_zip`` (into a temporary folder that
is removed afterwards), read by ``diffmic.data.readers.read_dataset`` (a folder per class, ISIC 2018 or
APTOS 2019 CSV + images), and scored by ``diffmic.evaluate.evaluate``; its tqdm bar drives the page's
progress bar. Visitors without a dataset can score held-out generated images of a built-in task
(``diffmic.data.datasets.synthetic_splits``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from torch.utils.data import Dataset

from diffmic.data.datasets import FileDataset
from diffmic.imageio import ImageLoadError
from diffmic.options import SamplingOptions

from . import figures, report
from .assets import class_index
from .controls import sampling_options, upload_path
from .errors import EXPECTED, UserError, error_markdown, on_error
from .models import ModelRegistry, Selection
from .outputs import new_run_folder
from .settings import EVAL_MAX_IMAGES, GENERATED_TEST_IMAGES, MAX_EVAL_SAMPLES

METHOD_NAMES = {
    "diffmic": "**DiffMIC**",
    "fused": "fused prior",
    "global": "global prior",
    "local": "local prior",
}
TABLE_HEADERS = ["file", "true class", "predicted class", "correct"]
COLUMN_WIDTHS = {4: ["46%", "21%", "21%", "12%"], 5: ["33%", "18%", "18%", "18%", "13%"]}
# what a dataset can get wrong: the archive and reader errors say what, in a sentence
DATA_ERRORS = (*EXPECTED, ValueError, FileNotFoundError)


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


def metrics_markdown(
    result: dict[str, Any], what: str, source: str, skipped: str, best: float | None = None
) -> str:
    """Headline metrics of DiffMIC and of its priors (and ``best``, the best accuracy possible on these
    images, for generated ones)."""
    kappa = "quadratic-weighted κ" if result["diffmic"].get("kappa_weights") == "quadratic" else "Cohen's κ"
    steps = result["steps"] or "all T"
    lines = [
        f"### Accuracy {result['diffmic']['accuracy']:.3f} · macro-F1 {result['diffmic']['macro_f1']:.3f} · "
        f"{kappa} {result['diffmic']['kappa']:.3f}",
        f"{result['n']} {what} · {source} · {str(result['sampler']).upper()}, {steps} steps, "
        f"{result['samples']} run(s) per image" + (f" · {skipped}" if skipped else ""),
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
    if best is not None:
        lines.append(f"| best possible on these images | {best:.3f} | | | |")
    lines += ["", "ECE: expected calibration error (0 = the probabilities are honest)."]
    if best is not None:
        lines += [
            "",
            f"Best possible: {best:.3f}, the accuracy of the Bayes rule on what each generated image "
            "shows (its lesions). No classifier can expect more: the images it misses show the lesions "
            "of a neighbouring class, and those errors are irreducible.",
        ]
    lines += [
        "",
        report.disclaimer_markdown(),
    ]
    return "\n".join(lines)


def cleared(error: str | None = None) -> tuple:
    """Every result emptied (new inputs, or a failure whose message ``error`` is shown)."""
    box = (
        gr.update(value=error_markdown(error), visible=True) if error else gr.update(value="", visible=False)
    )
    return (
        "",
        figures.empty_figure("Confusion matrix", 420),
        gr.update(value=[], headers=TABLE_HEADERS),
        None,
        box,
    )


def error_outputs(message: str) -> tuple:
    """The outputs of a failed evaluation: the message, no stale results."""
    return cleared(message)


def generated_note(task: str | None) -> tuple[str, bool]:
    """The sentence beside "Try it on generated test images", and whether the button works for ``task``."""
    from diffmic.data.synthetic import GENERATORS

    if task in GENERATORS:
        return (
            f"No dataset at hand? Score {GENERATED_TEST_IMAGES} generated {task} test images, never used "
            "in training (takes a little while on a CPU).",
            True,
        )
    return (
        f"Generated test images exist only for the built-in tasks ({', '.join(GENERATORS)}); "
        "this model's task is not one of them, so upload a labelled zip.",
        False,
    )


class Evaluation:
    """The Evaluate tab's handlers, bound to a model registry."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def _options(self, selection: Selection, sampler: str, steps: Any, samples: Any) -> SamplingOptions:
        return sampling_options(
            sampler, steps, samples, 0, selection.pipe.config.timesteps, max_samples=MAX_EVAL_SAMPLES
        )

    @on_error(error_outputs, "evaluation", DATA_ERRORS)
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
        from diffmic.data.archive import extracted_zip

        path = upload_path(zip_file)
        if not path:
            raise UserError("upload a .zip of a labelled dataset first (or try the generated test images)")
        selection = self.registry.get(model_choice)
        options = self._options(selection, sampler, steps, samples)
        progress(0, desc="checking and extracting the zip")
        with extracted_zip(path) as folder:
            root = dataset_root(folder)
            dataset, names, skipped = self._dataset(root, selection)
            return self._score(selection, dataset, names, options, "images", skipped)

    @on_error(error_outputs, "evaluation", DATA_ERRORS)
    def run_generated(
        self,
        model_choice: str,
        sampler: str,
        steps: Any,
        samples: Any,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple:
        """The same results on held-out generated test images of the model's (built-in) task."""
        from diffmic.data.datasets import synthetic_splits
        from diffmic.data.synthetic.ceiling import best_possible

        selection = self.registry.get(model_choice)
        note, usable = generated_note(selection.task)
        if not usable:
            raise UserError(note)
        options = self._options(selection, sampler, steps, samples)
        progress(0, desc=f"generating {GENERATED_TEST_IMAGES} test images")
        splits = synthetic_splits(selection.task, 0, GENERATED_TEST_IMAGES, selection.pipe.config.input_size)
        model_classes = list(selection.pipe.config.class_names)
        if [class_index(n, model_classes) for n in splits.class_names] != list(range(len(model_classes))):
            raise UserError(
                f"this model's classes ({', '.join(model_classes)}) are not the {selection.task} task's"
            )
        names = [f"generated #{i + 1}" for i in range(len(splits.test))]
        best = best_possible(selection.task, len(splits.test))
        return self._score(selection, splits.test, names, options, "generated test images", "", best)

    def generated_button(self, model_choice: str) -> tuple:
        """The generated-images button and its sentence for a model."""
        note, usable = generated_note(self.registry.task_of(model_choice))
        return gr.update(interactive=usable), note

    def _score(
        self,
        selection: Selection,
        dataset: Dataset,
        names: list[str],
        options: SamplingOptions,
        what: str,
        skipped: str,
        best: float | None = None,
    ) -> tuple:
        from diffmic.evaluate import evaluate

        result = evaluate(selection.pipe, dataset, options, batch_size=16, progress=True)
        classes = list(selection.pipe.config.class_names)
        headers, rows = per_image_rows(result, names, classes)
        csv_path = new_run_folder("evaluate") / "diffmic-evaluation.csv"
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            writer.writerows(rows)
        notice = f"\n\n**Note:** {selection.notice}" if selection.notice else ""
        return (
            metrics_markdown(result, what, selection.source, skipped, best) + notice,
            figures.confusion_figure(result["diffmic"]["confusion_matrix"], classes),
            gr.update(
                value=[[*r[:-1], "yes" if r[-1] else "no"] for r in rows],
                headers=headers,
                column_widths=COLUMN_WIDTHS[len(headers)],
            ),
            str(csv_path),
            gr.update(value="", visible=False),
        )

    @staticmethod
    def _dataset(root: Path, selection: Selection) -> tuple[NamedFileDataset, list[str], str]:
        from diffmic.data.readers import read_dataset

        model_classes = list(selection.pipe.config.class_names)
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
        return NamedFileDataset(paths, labels, selection.pipe.config.input_size), rel, skipped


def per_image_rows(
    result: dict[str, Any], rel_paths: list[str], names: list[str]
) -> tuple[list[str], list[list]]:
    """Table headers and one row per image: file, true class, predicted class, [probability,] correct."""
    probs = result.get("probabilities")  # per-image mean probabilities, when evaluate() provides them
    headers = TABLE_HEADERS[:3] + (["probability"] if probs is not None else []) + TABLE_HEADERS[3:]
    rows = []
    for i, (true, pred) in enumerate(zip(result["labels"], result["predictions"], strict=True)):
        extra = [round(float(probs[i][pred]), 3)] if probs is not None else []
        rows.append([rel_paths[i], names[true], names[pred], *extra, bool(true == pred)])
    return headers, rows
