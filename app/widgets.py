"""Pieces shared by the tabs: the look (theme, CSS), the disclaimer, the error box, the model menu."""

from __future__ import annotations

from typing import Any

import gradio as gr

from diffmic.diffusion import sampler_class

from . import report
from .models import ModelRegistry
from .settings import MAX_STEPS

# System fonts only (no web font to download): the page renders the same offline.
FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "Noto Sans",
         "Liberation Sans", "DejaVu Sans", "sans-serif"]  # fmt: skip
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "DejaVu Sans Mono",
              "monospace"]  # fmt: skip
THEME = gr.themes.Soft(primary_hue="blue", neutral_hue="slate", font=FONTS, font_mono=MONO_FONTS)

CSS = """
.block.disclaimer {background:#fff7ed; border:1px solid #fdba74; border-radius:8px; padding:2px 12px;}
.block.error-box {background:#fef2f2; border:1px solid #f87171; border-radius:8px; padding:2px 12px;}
.block.error-box p {color:#991b1b !important;}
.answer-card .cannot-assess {background:#fffbeb; border:2px solid #d97706; border-radius:8px;
  padding:4px 12px; margin:6px 0;}
.answer-card .cannot-assess p {color:#78350f !important;}
/* the answer of an image the model cannot assess: folded away, greyed */
.answer-card details.unreliable {color:#6b7280; border:1px dashed #cbd5e1; border-radius:6px;
  padding:2px 10px;}
.answer-card details.unreliable summary {cursor:pointer; font-weight:600; color:#475569;}
.answer-card details.unreliable > :not(summary) {opacity:0.7;}
.block.answer-card {border:1px solid #cbd5e1; border-radius:8px; padding:2px 14px; background:#f8fafc;}
.block.answer-card h3 {margin-top:8px !important;}
#counter {min-height:1.6em;}
.map-title p {font-weight:600; margin:0 !important;}
.map-note p {font-size:0.85em; color:#475569 !important; margin:0 !important;}
.colour-scale {max-width:420px; margin:2px 0 6px 0;}
.colour-bar {height:14px; border-radius:3px; border:1px solid #cbd5e1;}
.colour-ends {display:flex; justify-content:space-between; font-size:0.8em; color:#475569;}
/* tables: wrap between words only, never inside a word or a number (numbers hold no-break spaces);
   scroll sideways on a screen too narrow even for that */
.prose table {display:block; max-width:100%; overflow-x:auto;}
.prose th, .prose td {word-break:keep-all !important; overflow-wrap:normal !important;
  hyphens:none !important;}
#eval-table th, #eval-table td, #eval-table span {word-break:normal !important;
  overflow-wrap:normal !important; hyphens:none !important;}
/* output files are downloads, not uploads: no "remove" buttons */
#downloads .label-clear-button, #eval-csv .label-clear-button {display:none !important;}
/* the example gallery and the ROI patches in full: no inner scroll area hiding the last rows, captions on
   two lines if need be, never cut */
#examples .fixed-height, #crops .fixed-height {max-height:none !important; min-height:0 !important;}
#examples .caption-label, #crops .caption-label {white-space:normal !important; overflow:visible !important;
  text-overflow:clip !important; line-height:1.15; max-width:calc(100% - 8px) !important;
  word-break:keep-all; overflow-wrap:normal;}
/* the ROI patches pixel for pixel (the package enlarges them by a whole factor; the browser must not blur) */
#crops img {image-rendering:pixelated;}
#crops .caption-label {font-size:0.75em !important; padding:1px 4px !important;}
/* the upload: its icon clear of the label floating over the box's top; once an image is in, the box
   stays a drop target with a line to choose another (REPLACE_JS) */
#upload .upload-container {padding-top:24px !important; box-sizing:border-box;}
#upload .upload-container .wrap {line-height:1.25;}
#upload .replace-target {display:block; margin:2px 10px 8px; padding:6px 8px; border:1px dashed #93c5fd;
  border-radius:6px; font-size:0.85em; color:#1d4ed8; text-align:center; cursor:pointer;}
#upload .replace-target .narrow {display:none;}
#upload .replace-target:hover, #upload.replace-dragging .replace-target {background:#eff6ff;}
#upload.replace-dragging {outline:2px dashed #3b82f6; outline-offset:-2px;}
/* file names shown whole (on two lines if need be), not cut to a few letters */
#upload .file-preview .stem, #downloads .file-preview .stem {white-space:normal !important;
  overflow-wrap:anywhere; text-overflow:clip !important; overflow:visible !important;}
#upload .file-preview .filename, #downloads .file-preview .filename {white-space:normal !important;
  overflow-wrap:anywhere; display:flex !important; flex-wrap:wrap;}
#upload .file-preview .filename span, #downloads .file-preview .filename span {min-width:0; max-width:100%;}
/* dropdowns: the text stops before the chevron */
.secondary-wrap input {padding-right:26px !important; text-overflow:ellipsis;}
/* wide tables show that they scroll: a shadow on the side that has more (scroll shadows: the white
   covers move with the content, the shadows stay at the edges) */
.prose table, #eval-table .virtual-table-viewport {
  background:
    linear-gradient(to right, #fff 30%, rgba(255,255,255,0)) left center / 36px 100% no-repeat local,
    linear-gradient(to left, #fff 30%, rgba(255,255,255,0)) right center / 36px 100% no-repeat local,
    radial-gradient(farthest-side at 0 50%, rgba(15,23,42,0.35), rgba(15,23,42,0)) left center / 14px 100%
      no-repeat scroll,
    radial-gradient(farthest-side at 100% 50%, rgba(15,23,42,0.35), rgba(15,23,42,0)) right center / 14px 100%
      no-repeat scroll;}
.prose table th, .prose table td, #eval-table .virtual-row {background:transparent !important;}
/* Plotly's toolbar gets a strip of its own above the figure (it covered the titles); hidden on phones */
.js-plotly-plot .svg-container {margin-top:26px;}
.js-plotly-plot .modebar-container {top:-26px !important;}
/* a phone: the image box and its preview side by side, so that Run is on the first screen */
@media (max-width: 640px) {
  #image-row {flex-wrap:nowrap !important; gap:8px;}
  #image-row > * {min-width:0 !important; flex:1 1 50% !important;}
  #upload .upload-container {height:130px !important;}
  #upload .file-preview-holder {max-height:90px !important;}
  #model .info-text {display:none;}  /* the Hub hint: Run stays on the first screen */
  #upload .upload-container {padding-top:46px !important;}
  #upload .wrap {font-size:0.85em;}
  #upload .file-preview td.download {display:none;}
  #upload .file-preview .filename {font-size:0.8em; padding:4px 6px !important;}
  #upload .replace-target {margin:2px 6px 4px; padding:3px 4px;}
  #upload .replace-target .wide {display:none;}
  #upload .replace-target .narrow {display:inline;}
  #preview {height:auto;}
  #preview img {max-height:120px !important;}
  .js-plotly-plot .svg-container {margin-top:0;}
  .js-plotly-plot .modebar-container {display:none !important;}
  #examples .caption-label {font-size:0.72em !important;}
}
@media (min-width: 641px) {
  #image-row {flex-direction:column !important; flex-wrap:nowrap !important;}
}
"""


# Once an image is in, Gradio's single-file box shows the file's name and a ✕, and takes no drop or
# choice. This keeps it a target: a file dropped on it, or chosen with the line it adds ("Drop another
# image here, or choose one", its own file input), goes through the box's ✕ and then its own drop zone,
# exactly as a user replacing the image by hand (the same change and upload events reach the server).
REPLACE_JS = """
if (!window.__diffmicReplace) {
  window.__diffmicReplace = true;
  const box = () => document.getElementById('upload');
  const zone = b => b && b.querySelector('.upload-container input[type=file]');
  const loaded = b =>
    b && !b.querySelector('.upload-container') && b.querySelector('button[aria-label=Clear]');
  const replace = async files => {
    const b = box();
    if (!b || !files || !files.length) return;
    const clear = b.querySelector('button[aria-label=Clear]');
    if (clear) clear.click();
    for (let i = 0; i < 250; i++) {  // the drop zone is back a frame after the clear
      const input = zone(box());
      if (input) {
        const dt = new DataTransfer();
        dt.items.add(files[0]);
        input.files = dt.files;
        input.dispatchEvent(new Event('change', {bubbles: true}));
        return;
      }
      await new Promise(r => setTimeout(r, 20));
    }
  };
  const ensure = () => {
    const b = box();
    if (!b) return;
    const mine = b.querySelector('.replace-target');
    if (!loaded(b)) { if (mine) mine.remove(); b.classList.remove('replace-dragging'); return; }
    if (mine) return;
    const label = document.createElement('label');
    label.className = 'replace-target';
    label.innerHTML = '<input type="file" aria-label="Replace the image" style="display:none">'
      + '<span class="wide">Drop another image here, or <u>choose one</u></span>'
      + '<span class="narrow"><u>Choose another image</u></span>';
    label.querySelector('input').addEventListener('change', e => replace(Array.from(e.target.files)));
    b.appendChild(label);
  };
  const inBox = e => e.target instanceof Element && e.target.closest('#upload') && loaded(box());
  document.addEventListener('dragover', e => {
    if (inBox(e)) { e.preventDefault(); box().classList.add('replace-dragging'); }
  });
  document.addEventListener('dragleave', e => { if (inBox(e)) box().classList.remove('replace-dragging'); });
  document.addEventListener('drop', e => {
    if (!inBox(e)) return;
    e.preventDefault();
    box().classList.remove('replace-dragging');
    replace(Array.from(e.dataTransfer ? e.dataTransfer.files : []));
  });
  new MutationObserver(ensure).observe(document.body, {childList: true, subtree: true});
  ensure();
}
"""


def disclaimer() -> gr.Markdown:
    """The disclaimer box (on every tab)."""
    return gr.Markdown(report.disclaimer_markdown(), elem_classes="disclaimer")


def error_box(elem_id: str) -> gr.Markdown:
    """A hidden red box for messages about bad inputs."""
    return gr.Markdown("", label="error", visible=False, elem_classes="error-box", elem_id=elem_id)


def replace_target() -> gr.HTML:
    """An empty HTML block whose script keeps the image box a drop / choose target (``REPLACE_JS``)."""
    return gr.HTML("", js_on_load=REPLACE_JS, elem_id="replace-script", padding=False, container=False)


def short_choice(label: str) -> str:
    """A model's menu label short enough for a phone's dropdown: the task title up to its colon
    ("fundus — Fundus photographs: diabetic-retinopathy grade (5 grades)" → "fundus — Fundus photographs"),
    a "(missing)" kept."""
    head, colon, _ = label.partition(":")
    return head + (" (missing)" if colon and label.endswith(" (missing)") else "")


def model_dropdown(registry: ModelRegistry, elem_id: str) -> gr.Dropdown:
    """Bundled models, or any Hub repo id typed in (the labels shortened by ``short_choice``)."""
    return gr.Dropdown(
        [(short_choice(label), value) for label, value in registry.choices()],
        value=registry.default_choice(),
        label="Model",
        info="A bundled model, or type a Hugging Face Hub repo id (org/name).",
        allow_custom_value=True,
        elem_id=elem_id,
    )


def steps_range(registry: ModelRegistry, choice: str, sampler: str) -> dict[str, Any]:
    """The Steps slider for a model and sampler: up to T; the sampler's ``default_steps`` (None: all T)."""
    T = registry.timesteps(choice) or MAX_STEPS
    default = sampler_class(sampler).default_steps
    value = T if default is None else min(default, T)
    return dict(maximum=max(T, 1), value=value)


def steps_slider(registry: ModelRegistry, sampler: str, elem_id: str) -> gr.Slider:
    """The Steps slider of a tab, for the default model and ``sampler`` (``steps_range``)."""
    return gr.Slider(
        minimum=1,
        step=1,
        label="Steps",
        elem_id=elem_id,
        **steps_range(registry, registry.default_choice(), sampler),
    )


def steps_update(registry: ModelRegistry, choice: str, sampler: str) -> dict[str, Any]:
    """``steps_range`` as an update of the slider."""
    return gr.update(**steps_range(registry, choice, sampler))
