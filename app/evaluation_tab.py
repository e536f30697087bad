"""The Evaluate tab's layout and events (handlers: ``evaluation.Evaluation``). Its sampler, steps and runs
start at Diagnose's defaults (``settings.DEFAULT_OPTIONS``), so DiffMIC is scored as Diagnose answers."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from diffmic.class_match import RULE
from diffmic.diffusion import SAMPLERS

from . import figures
from .eval_metrics import SAMPLE_CONSEQUENCE, diagnose_estimator
from .eval_table import TABLE_HEADERS, column_widths
from .evaluation import EVAL_OUTPUTS, Evaluation, cleared, generated_note
from .glossary import info
from .gpu import on_gpu
from .models import ModelRegistry
from .settings import DEFAULT_OPTIONS, GENERATED_TEST_IMAGES, MAX_EVAL_SAMPLES
from .widgets import disclaimer, error_box, model_dropdown, steps_slider, steps_update

DEFAULTS_NOTE = (
    f"Defaults: Diagnose's estimator, {diagnose_estimator()} per image, so the scores are those of the "
    f"answers Diagnose gives. Faster: Runs{info('run')} per image = 1 ({SAMPLE_CONSEQUENCE}); "
    f"DDIM{info('DDIM')} with fewer steps."
)


@dataclass(frozen=True)
class EvalInputs:
    """The dataset (a zip, or the generated test images) on the left, the model and its settings beside it."""

    archive: gr.File
    error: gr.Markdown
    run: gr.Button
    generated: gr.Button
    generated_text: gr.Markdown
    model: gr.Dropdown
    sampler: gr.Radio
    steps: gr.Slider
    samples: gr.Slider


@dataclass(frozen=True)
class EvalResults:
    """The metrics, the confusion matrix, the per-image table and its CSV."""

    metrics: gr.Markdown
    confusion: gr.Plot
    table: gr.Dataframe
    table_csv: gr.File


def build_evaluate_tab(evaluation: Evaluation, registry: ModelRegistry) -> None:
    """The Evaluate tab (inside a gr.Tab)."""
    disclaimer()
    gr.Markdown(
        "Upload a **.zip** of a labelled dataset: one folder per class (`Moderate/img1.png`, …), an "
        "ISIC 2018 ground-truth CSV with its images, or an APTOS 2019 `train.csv` with "
        f"`train_images/`. Classes are matched to the model's by name ({RULE}); images of other "
        "classes are skipped, and the results say which. The zip is checked before anything is extracted "
        "(no paths outside the archive, at most 5,000 files and 500 MB, no zip bombs)."
    )
    inputs = eval_inputs(registry)
    results = eval_results()
    wire_evaluate_tab(evaluation, registry, inputs, results)


def eval_inputs(registry: ModelRegistry) -> EvalInputs:
    """The zip and the generated images' button on the left; the model, sampler, steps and runs."""
    note, usable = generated_note(registry.task_of(registry.default_choice(), load=False))
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            archive = gr.File(
                label="Dataset (.zip)", file_types=[".zip"], type="filepath", elem_id="eval-zip"
            )
            error = error_box("eval-error")
            run = gr.Button("Evaluate the zip", variant="primary", elem_id="eval-run")
            generated = gr.Button(
                f"Try it on {GENERATED_TEST_IMAGES} generated test images",
                interactive=usable,
                elem_id="eval-generated",
            )
            generated_text = gr.Markdown(note, elem_classes="map-note", elem_id="eval-generated-note")
        with gr.Column(scale=2, min_width=320):
            model = model_dropdown(registry, "eval-model")
            with gr.Row():
                sampler = gr.Radio(
                    [cls.label for cls in SAMPLERS.values()],
                    value=SAMPLERS[DEFAULT_OPTIONS.sampler].label,
                    label="Sampler",
                    elem_id="eval-sampler",
                )
                steps = steps_slider(registry, DEFAULT_OPTIONS.sampler, "eval-steps")
                samples = gr.Slider(
                    1,
                    MAX_EVAL_SAMPLES,
                    value=DEFAULT_OPTIONS.samples,
                    step=1,
                    label="Runs per image",
                    elem_id="eval-samples",
                )
            gr.Markdown(DEFAULTS_NOTE, elem_classes="map-note")
    return EvalInputs(archive, error, run, generated, generated_text, model, sampler, steps, samples)


def eval_results() -> EvalResults:
    """The metrics, then the confusion matrix beside the per-image table, then the table as CSV."""
    metrics = gr.Markdown("", elem_id="eval-metrics")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            confusion = gr.Plot(
                figures.empty_figure("Confusion matrix", 420), show_label=False, elem_id="confusion"
            )
        with gr.Column(scale=3, min_width=320):
            table = gr.Dataframe(
                headers=TABLE_HEADERS,
                interactive=False,
                wrap=True,
                column_widths=column_widths(TABLE_HEADERS, []),
                max_height=420,
                label="Per-image results",
                elem_id="eval-table",
            )
    table_csv = gr.File(label="Per-image results (CSV)", interactive=False, height=90, elem_id="eval-csv")
    return EvalResults(metrics, confusion, table, table_csv)


def wire_evaluate_tab(
    evaluation: Evaluation, registry: ModelRegistry, inputs: EvalInputs, results: EvalResults
) -> None:
    """Evaluate the zip or the generated images; a new zip or model clears the results."""
    archive, model, sampler, steps = inputs.archive, inputs.model, inputs.sampler, inputs.steps
    samples, generated, generated_text = inputs.samples, inputs.generated, inputs.generated_text
    shown = dict(vars(results), error=inputs.error)
    outputs = [shown[name] for name in EVAL_OUTPUTS]  # the handlers return EvalOutputs, in this order
    private = dict(api_visibility="private")
    busy = dict(concurrency_limit=1, concurrency_id="evaluate")
    inputs.run.click(
        on_gpu(evaluation.run),
        [archive, model, sampler, steps, samples],
        outputs,
        api_visibility="undocumented",
        api_name="evaluate",
        **busy,
    )
    generated.click(
        on_gpu(evaluation.run_generated), [model, sampler, steps, samples], outputs, **private, **busy
    )
    archive.change(cleared, None, outputs, show_progress="hidden", **private)
    model.change(cleared, None, outputs, show_progress="hidden", **private).then(
        evaluation.generated_button, model, [generated, generated_text], **private
    ).then(lambda m, s: steps_update(registry, m, s), [model, sampler], steps, **private)
    sampler.input(lambda m, s: steps_update(registry, m, s), [model, sampler], steps, **private)
