"""The Diagnose tab's layout and events (handlers: ``diagnose.Diagnosis``).

Inputs on the left (``diagnose_inputs``), with Run near the top (reachable without scrolling at 1400 x 900,
and at 390 x 844 where the image box and its preview sit side by side) and the error box right under them;
the image box stays a drop / choose target once an image is in (``widgets.REPLACE_JS``); on the right the
answer (``diagnose_results``): the counter, the answer card (which says first when the image cannot be
assessed by the model), the trajectory with its sampler switch and, once a run is done, its replay (Play /
Pause, a slider of the steps, each run as a thin line), and the bars; under both, full width, where the
model looked (``diagnose_maps``: the ROI patches pixel for pixel). This module puts the panels in place,
keeps the page's state, offers the predict API and wires the events.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from diffmic.diffusion import SAMPLERS

from .assets import Example, list_examples
from .controls import scan_details
from .diagnose import Diagnosis
from .diagnose_frames import OUTPUTS, REDRAW_OUTPUTS, REPLAY_OUTPUTS
from .diagnose_inputs import DiagnoseInputs, input_panel
from .diagnose_maps import MapPanel, map_panel
from .diagnose_results import DiagnoseResults, results_panel
from .gpu import on_gpu
from .models import ModelRegistry
from .replay import REPLAY_S
from .settings import Settings
from .widgets import disclaimer, replace_target, steps_update

PRIVATE = dict(api_visibility="private")
HIDDEN_PROGRESS = dict(show_progress="hidden", **PRIVATE)


@dataclass(frozen=True)
class DiagnoseState:
    """What the page keeps between events: the run's maps and figure, the run's token, the replay's clock."""

    maps: gr.State
    figure: gr.State
    token: gr.State
    replay_timer: gr.Timer
    replay_clock: gr.State


@dataclass(frozen=True)
class PredictAPI:
    """The predict API's hidden inputs, output and button."""

    inputs: list
    output: gr.JSON
    button: gr.Button


@dataclass(frozen=True)
class DiagnosePage:
    """Every panel of the tab."""

    inputs: DiagnoseInputs
    results: DiagnoseResults
    maps: MapPanel
    state: DiagnoseState
    api: PredictAPI

    def components(self) -> dict:
        """The components by the names the handlers' outputs use (``OUTPUTS``, ``REPLAY_OUTPUTS``, …)."""
        results = self.results
        panels = (self.inputs, results.card, results.trajectory, results.probabilities, results.details)
        return {name: c for panel in (*panels, self.maps, self.state) for name, c in vars(panel).items()}


def build_diagnose_tab(diagnosis: Diagnosis, registry: ModelRegistry, settings: Settings) -> None:
    """The Diagnose tab (inside a gr.Tab)."""
    examples = list_examples(settings.assets_dir)
    disclaimer()
    with gr.Row(equal_height=False):
        inputs = input_panel(registry, settings, examples)
        results = results_panel()
    maps = map_panel()
    replace_target()
    state = page_state()
    api = predict_api(registry)
    wire_diagnose_tab(diagnosis, registry, DiagnosePage(inputs, results, maps, state, api), examples)


def page_state() -> DiagnoseState:
    """The run's maps and figure, the token of the run in progress, the replay's timer and clock."""
    map_state = gr.State(None)
    figure_state = gr.State(None)
    token = gr.State(None)
    replay_timer = gr.Timer(REPLAY_S, active=False)
    replay_clock = gr.State(None)
    return DiagnoseState(map_state, figure_state, token, replay_timer, replay_clock)


def predict_api(registry: ModelRegistry) -> PredictAPI:
    """The predict API: its own inputs (CLI defaults), free of the sliders' limits, in a hidden row."""
    with gr.Row(visible=False):
        api_inputs = [
            gr.File(type="filepath", label="image"),
            gr.Textbox(registry.default_choice(), label="model"),
            gr.Textbox("ddpm", label="sampler", info=" or ".join(SAMPLERS)),
            gr.Number(0, label="steps", precision=0, info="0 = all T steps"),
            gr.Number(1, label="samples", precision=0),
            gr.Number(0, label="seed", precision=0),
        ]
        api_output = gr.JSON(label="prediction")
        api_button = gr.Button("predict")
    return PredictAPI(api_inputs, api_output, api_button)


def wire_diagnose_tab(
    diagnosis: Diagnosis, registry: ModelRegistry, page: DiagnosePage, examples: list[Example]
) -> None:
    """The events, in this order: the image and the model; Run, Stop and the sampler; the replay; the maps'
    controls and the downloads; the predict API."""
    wire_inputs(diagnosis, registry, page, examples)
    wire_runs(diagnosis, registry, page)
    wire_replay(diagnosis, page)
    wire_maps_and_downloads(diagnosis, page)
    api = page.api
    api.button.click(on_gpu(diagnosis.predict), api.inputs, api.output, api_name="predict")


def wire_inputs(
    diagnosis: Diagnosis, registry: ModelRegistry, page: DiagnosePage, examples: list[Example]
) -> None:
    """An upload (its preview and scan details), a picked example, another model."""
    components = page.components()
    outputs = [components[name] for name in OUTPUTS]
    upload, preview, model = page.inputs.upload, page.inputs.preview, page.inputs.model
    sampler, steps = page.results.trajectory.sampler, page.inputs.steps
    upload.change(diagnosis.preview, upload, [preview, *outputs], show_progress="hidden", **PRIVATE)
    upload.change(scan_details, upload, page.inputs.scan_info, show_progress="hidden", **PRIVATE)
    if examples:

        def pick(current: str, evt: gr.SelectData) -> tuple:
            """Put the example in the upload box; switch to its task's model if a bundled one is chosen."""
            chosen = examples[evt.index]
            bundled = registry.available()
            switch = current in bundled and chosen.task in bundled and chosen.task != current
            return str(chosen.path), chosen.task if switch else gr.skip()

        page.inputs.gallery.select(pick, model, [upload, model], show_progress="hidden", **PRIVATE)
    model.change(diagnosis.model_changed, model, outputs, show_progress="hidden", **PRIVATE).then(
        lambda m, s: steps_update(registry, m, s), [model, sampler], steps, **PRIVATE
    )


def wire_runs(diagnosis: Diagnosis, registry: ModelRegistry, page: DiagnosePage) -> None:
    """Run (armed, streamed, then its replay's figures), Stop, and a sampler switch that re-runs the image."""
    components = page.components()
    outputs = [components[name] for name in OUTPUTS]
    inputs, state = page.inputs, page.state
    model, sampler, steps, token = inputs.model, page.results.trajectory.sampler, inputs.steps, state.token
    run_inputs = [inputs.upload, model, sampler, steps, inputs.samples, inputs.seed, token]
    replay_inputs = replay_inputs_of(page)
    redraw_outputs = [components[name] for name in REDRAW_OUTPUTS]
    inputs.run.click(diagnosis.arm, None, [token, page.results.card.counter], queue=False, **PRIVATE).then(
        on_gpu(diagnosis.run), run_inputs, outputs, api_name="diagnose", show_progress="hidden"
    ).then(diagnosis.runs_after_run, replay_inputs, redraw_outputs, **HIDDEN_PROGRESS)
    inputs.stop.click(diagnosis.stop, None, None, queue=False, **PRIVATE)
    sampler.input(lambda m, s: steps_update(registry, m, s), [model, sampler], steps, **PRIVATE).then(
        diagnosis.token, None, token, queue=False, **PRIVATE
    ).then(on_gpu(diagnosis.rerun), [state.maps, *run_inputs], outputs, **HIDDEN_PROGRESS).then(
        diagnosis.runs_after_run, replay_inputs, redraw_outputs, **HIDDEN_PROGRESS
    )


def replay_inputs_of(page: DiagnosePage) -> list:
    """What the replay's handlers take: the run, the slider, "each run", the clock."""
    trajectory, state = page.results.trajectory, page.state
    return [state.figure, trajectory.replay, trajectory.each_run, state.replay_clock]


def wire_replay(diagnosis: Diagnosis, page: DiagnosePage) -> None:
    """Replay and Pause, the replay's timer, and the slider and "each run" moved by hand."""
    components = page.components()
    trajectory, replay_timer = page.results.trajectory, page.state.replay_timer
    replay_inputs = replay_inputs_of(page)
    replay_outputs = [components[name] for name in REPLAY_OUTPUTS]
    redraw_outputs = [components[name] for name in REDRAW_OUTPUTS]
    trajectory.replay_play.click(diagnosis.replay_play, replay_inputs, replay_outputs, **HIDDEN_PROGRESS)
    trajectory.replay_pause.click(lambda: gr.Timer(active=False), None, replay_timer, **HIDDEN_PROGRESS)
    replay_timer.tick(diagnosis.replay_tick, replay_inputs, replay_outputs, **HIDDEN_PROGRESS)
    for control in (trajectory.replay, trajectory.each_run):
        control.input(
            diagnosis.replay_at, replay_inputs, redraw_outputs, trigger_mode="always_last", **HIDDEN_PROGRESS
        )


def wire_maps_and_downloads(diagnosis: Diagnosis, page: DiagnosePage) -> None:
    """The heat map's choice and opacity; the figure and the case report added to the downloads."""
    maps, details, figure_state = page.maps, page.results.details, page.state.figure
    for control in (maps.heat_choice, maps.opacity):
        control.change(
            on_gpu(diagnosis.redraw_heat),
            [page.state.maps, maps.heat_choice, maps.opacity],
            maps.heat,
            show_progress="hidden",
            **PRIVATE,
        )
    downloads = details.downloads
    details.make_figure.click(diagnosis.figure, figure_state, downloads, show_progress="minimal", **PRIVATE)
    details.make_report.click(
        diagnosis.case_report, figure_state, downloads, show_progress="minimal", **PRIVATE
    )
