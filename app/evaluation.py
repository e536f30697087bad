"""Handlers of the Evaluate tab: a zipped labelled dataset, or generated test images, in; metrics, a
confusion matrix and a per-image table out (``EvalOutputs``).

The zip is checked and extracted by ``diffmic.data.archive.extracted_zip`` (into a temporary folder that
is removed afterwards), read by ``diffmic.data.readers.read_dataset`` (a folder per class, ISIC 2018 or
APTOS 2019 CSV + images), its classes matched to the model's by ``diffmic.class_match`` (as ``python -m
diffmic evaluate`` matches them), its images preprocessed as the pipeline preprocesses the model's (the
task's square: crop or keep the aspect), and scored by ``diffmic.evaluate.evaluate`` with Diagnose's
estimator by default; its tqdm bar, counting images, drives the page's progress bar. Visitors without a
dataset can score held-out generated images of a built-in task (``diffmic.data.datasets.synthetic_splits``),
each row of the results beside the best accuracy possible on those images (the Bayes ceiling).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import plotly.graph_objects as go
import torch
from torch.utils.data import Dataset

from diffmic.class_match import ClassMismatch, match_dataset, require_same_classes
from diffmic.data.datasets import FileDataset
from diffmic.imageio import ImageLoadError
from diffmic.options import SamplingOptions

from . import figures
from .confusion_figure import confusion_figure
from .controls import sampling_options, upload_path
from .errors import EXPECTED, UserError, error_markdown, on_error
from .eval_metrics import metrics_markdown
from .eval_table import TABLE_HEADERS, per_image_rows, table_update
from .models import ModelRegistry, Selection
from .outputs import new_run_folder
from .settings import DEFAULT_OPTIONS, EVAL_MAX_IMAGES, GENERATED_TEST_IMAGES, MAX_EVAL_SAMPLES

# what a dataset can get wrong: the archive and reader errors say what, in a sentence
DATA_ERRORS = (*EXPECTED, ValueError, FileNotFoundError)
BATCH_SIZE = 16  # images scored together


class EvalOutputs(NamedTuple):
    """What an Evaluate handler returns, in the order of the tab's outputs."""

    metrics: str  # Markdown: headline, estimator, per-method table, notes
    confusion: go.Figure
    table: dict  # gr.update of the per-image Dataframe
    table_csv: str | None  # the per-image table as a CSV file
    error: dict  # gr.update of the error box


EVAL_OUTPUTS = EvalOutputs._fields


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


def cleared(error: str | None = None) -> EvalOutputs:
    """Every result emptied (new inputs, or a failure whose message ``error`` is shown)."""
    box = (
        gr.update(value=error_markdown(error), visible=True) if error else gr.update(value="", visible=False)
    )
    return EvalOutputs(
        metrics="",
        confusion=figures.empty_figure("Confusion matrix", 420),
        table=gr.update(value=[], headers=TABLE_HEADERS),
        table_csv=None,
        error=box,
    )


def error_outputs(message: str) -> EvalOutputs:
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


def class_mismatch(err: ClassMismatch) -> UserError:
    """The package's class-matching refusal, as the page shows it (the CLI prints the same message)."""
    return UserError(str(err))


class Evaluation:
    """The Evaluate tab's handlers, bound to a model registry."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def _options(self, selection: Selection, sampler: str, steps: Any, samples: Any) -> SamplingOptions:
        """The controls as SamplingOptions (the seed is Diagnose's default: Evaluate has no seed control)."""
        timesteps = selection.pipe.config.timesteps
        return sampling_options(
            sampler, steps, samples, DEFAULT_OPTIONS.seed, timesteps, max_samples=MAX_EVAL_SAMPLES
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
    ) -> EvalOutputs:
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
    ) -> EvalOutputs:
        """The same results on held-out generated test images of the model's (built-in) task, each row
        beside the best accuracy possible on them."""
        from diffmic.data.datasets import synthetic_splits
        from diffmic.data.synthetic.ceiling import best_possible, tasks_with_law

        selection = self.registry.get(model_choice)
        note, usable = generated_note(selection.task)
        if not usable:
            raise UserError(note)
        options = self._options(selection, sampler, steps, samples)
        progress(0, desc=f"generating {GENERATED_TEST_IMAGES} test images")
        splits = synthetic_splits(selection.task, 0, GENERATED_TEST_IMAGES, selection.pipe.config.input_size)
        try:
            require_same_classes(
                splits.class_names, selection.pipe.config.class_names, f"the {selection.task} task"
            )
        except ClassMismatch as err:
            raise class_mismatch(err) from err
        names = [f"generated #{i + 1}" for i in range(len(splits.test))]
        has_law = selection.task in tasks_with_law()
        best = best_possible(selection.task, len(splits.test)) if has_law else None
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
    ) -> EvalOutputs:
        from diffmic.evaluate import evaluate

        cfg = selection.pipe.config
        result = evaluate(selection.pipe, dataset, options, batch_size=BATCH_SIZE, progress=True)
        classes = list(cfg.class_names)
        headers, rows = per_image_rows(result, names, classes)
        csv_path = new_run_folder("evaluate") / "diffmic-evaluation.csv"
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            writer.writerows(rows)
        notice = f"\n\n**Note:** {selection.notice}" if selection.notice else ""
        return EvalOutputs(
            metrics=metrics_markdown(result, what, selection.source, cfg.timesteps, skipped, best) + notice,
            confusion=confusion_figure(result["diffmic"]["confusion_matrix"], classes),
            table=table_update(headers, rows),
            table_csv=str(csv_path),
            error=gr.update(value="", visible=False),
        )

    @staticmethod
    def _dataset(root: Path, selection: Selection) -> tuple[Dataset, list[str], str]:
        """The dataset under ``root`` as the model's classes (``class_match``, as the CLI), preprocessed as
        the pipeline does; its files relative to ``root``; what was skipped, in a sentence."""
        from diffmic.data.readers import read_dataset

        try:
            matched = match_dataset(read_dataset(root), selection.pipe.config.class_names)
        except ClassMismatch as err:
            raise class_mismatch(err) from err
        if len(matched.paths) > EVAL_MAX_IMAGES:
            n = len(matched.paths)
            raise UserError(f"the dataset has {n} images; the limit here is {EVAL_MAX_IMAGES}")
        rel = [p.relative_to(root).as_posix() for p in matched.paths]
        return matched.dataset(selection.pipe.config, NamedFileDataset), rel, matched.skipped_sentence()
