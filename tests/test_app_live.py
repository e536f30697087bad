"""The app launched on 127.0.0.1: called with gradio_client, then driven in a real Chromium browser.

The browser test replays a run, plays Learn's animation both ways and changes its prior, stops a run,
changes the image after a run, uploads an image the distribution check flags, fails on any console error
or uncaught page error, and saves screenshots: ``diagnose.png``, ``learn.png`` and
``evaluate.png`` at 1400 x 900 and ``diagnose-mobile.png`` at 390 px wide (full pages), in a temporary
folder or in ``DIFFMIC_SCREENSHOTS_DIR``. They come from tiny random models;
``DIFFMIC_SCREENSHOTS_WITH_BUNDLED=1`` uses the repo's own ``weights/`` and ``assets/`` instead (when
the fundus model loads). The README's screenshots are made with::

    DIFFMIC_SCREENSHOTS_WITH_BUNDLED=1 DIFFMIC_SCREENSHOTS_DIR=docs/screenshots \\
        python -m pytest -q tests/test_app_live.py -k browser

Two stand-ins run in the app's process: a distribution check that flags a blank image for the fundus
model (and lets the derm model accept it), and a switch that slows the chain so Stop can be pressed
mid-run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import gradio as gr
import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from app.diagnose_frames import OUTPUTS
from app.models import ModelRegistry
from app.server import launch
from app.settings import BATCHED_CONCURRENCY, CONCURRENCY_LIMIT, MAX_FILE_SIZE, QUEUE_SIZE, Settings
from app.ui import build_demo
from diffmic.hub import ModelLoadError
from diffmic.lean import lean_chain
from diffmic.options import APP_DEFAULT, SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.test_app_support import FUNDUS, make_app_dirs, make_dataset_zip

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# gr.State and layout blocks are not in the API
API_OUTPUTS = [name for name in OUTPUTS if name not in ("maps", "figure", "replay_box")]
SLOW = {"seconds": 0.0}  # pause after every reverse step, to press Stop mid-run


@dataclass
class Live:
    url: str
    settings: Settings
    registry: ModelRegistry
    examples: list[Path]
    root: Path
    demo: gr.Blocks

    @property
    def example(self) -> Path:
        return next((p for p in self.examples if "moderate" in p.name), self.examples[0])

    @property
    def T(self) -> int:
        return self.registry.timesteps("fundus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundled_settings() -> Settings | None:
    """The repo's own weights/ and assets/, when DIFFMIC_SCREENSHOTS_WITH_BUNDLED=1 and fundus loads."""
    if os.environ.get("DIFFMIC_SCREENSHOTS_WITH_BUNDLED") != "1":
        return None
    settings = Settings(REPO / "weights", REPO / "assets", None, 1)
    try:
        ModelRegistry(settings).get("fundus")
    except ModelLoadError:
        return None
    return settings if list((REPO / "assets" / "fundus").glob("*.png")) else None


def flag_blank_images(check):
    """A stand-in distribution check: a blank image is unlike the fundus model's training images and
    the other models accept it; other images keep the model's own check."""

    def patched(self, image):
        prepared = self.prepare(image)
        if np.ptp(prepared.pixels) == 0:
            flagged = self.config.task == "fundus"
            return {"available": True, "score": 9.0 if flagged else 1.0, "threshold": 5.0, "flagged": flagged}
        return check(self, prepared)

    return patched


def slowed(steps):
    """The reverse chain with a pause of ``SLOW["seconds"]`` after every step."""

    def patched(*args, **kwargs):
        for state in steps(*args, **kwargs):
            if SLOW["seconds"]:
                time.sleep(SLOW["seconds"])
            yield state

    return patched


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    settings = bundled_settings() or make_app_dirs(root, n_examples=5, tasks=("fundus", "derm"))
    registry = ModelRegistry(settings)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            DiffMICPipeline, "check_distribution", flag_blank_images(DiffMICPipeline.check_distribution)
        )
        mp.setattr("diffmic.pipeline.lean_chain", slowed(lean_chain))
        demo = build_demo(settings, registry)
        _, url, _ = launch(
            demo,
            registry,
            settings,
            server_name="127.0.0.1",
            server_port=free_port(),
            prevent_thread_lock=True,
            quiet=True,
        )
        examples = sorted((settings.assets_dir / "fundus").glob("*.png"))
        try:
            yield Live(url, settings, registry, examples, root, demo)
        finally:
            demo.close()
            torch.set_num_threads(threads)


def test_gradio_client_gets_an_answer_and_a_trajectory(live):
    from gradio_client import Client, handle_file

    client = Client(live.url, verbose=False)
    job = client.submit(handle_file(str(live.example)), "fundus", "DDPM", live.T, 4, 0, api_name="/diagnose")
    final = dict(zip(API_OUTPUTS, job.result(timeout=120), strict=True))
    assert final["json"]["label"] in FUNDUS and "probability" in final["answer"]
    plot = json.loads(final["trajectory"]["plot"])
    lines = [t for t in plot["data"] if t.get("mode") == "lines" and t.get("legendgroup")]
    assert [t["name"] for t in lines] == FUNDUS and len(
        lines[0]["x"]
    ) == 1 + live.T  # the prior, then T steps
    assert final["counter"].startswith(f"**Done:** {live.T} of {live.T} steps")

    answer = client.predict(handle_file(str(live.example)), "fundus", "ddpm", 0, 4, 0, api_name="/predict")
    expected = live.registry.get("fundus").pipe(str(live.example), SamplingOptions(samples=4)).to_json()
    assert set(answer) == {*expected, "assessable"} and answer.pop("assessable") is True
    answer.pop("seconds"), expected.pop("seconds")
    assert answer == expected
    assert final["json"]["label"] == answer["label"]


def test_gradio_client_gets_a_clear_error(live, tmp_path):
    from gradio_client import Client, handle_file

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    client = Client(live.url, verbose=False)
    with pytest.raises(Exception, match="not a recognised image"):
        client.predict(handle_file(str(bad)), "fundus", "ddpm", 10, 1, 0, api_name="/predict")


def test_the_server_applies_the_upload_limit_and_the_queue(live):
    """The limits ``app.settings`` sets reach the running server: an upload over MAX_FILE_SIZE is refused (and
    the page is told the limit), the queue holds QUEUE_SIZE requests, CONCURRENCY_LIMIT runs go at once
    (BATCHED_CONCURRENCY of Diagnose and /predict, which wait on the batcher) and Evaluate one at a time."""
    limit = gr.utils._parse_file_size(MAX_FILE_SIZE)
    upload = f"{live.url}gradio_api/upload"
    over = httpx.post(upload, files={"files": ("big.png", b"\0" * (limit + 1))}, timeout=60)
    assert over.status_code == 413 and "maximum allowed size" in over.text
    under = httpx.post(upload, files={"files": ("small.png", b"\0" * 1000)}, timeout=60)
    assert under.status_code == 200 and len(under.json()) == 1
    assert httpx.get(f"{live.url}config", timeout=30).json()["max_file_size"] == limit
    queue = live.demo._queue
    assert queue.max_size == QUEUE_SIZE and queue.default_concurrency_limit == CONCURRENCY_LIMIT

    def limit(fn) -> int | None:  # how Gradio's queue resolves an event's concurrency limit
        return queue.default_concurrency_limit if fn.concurrency_limit == "default" else fn.concurrency_limit

    fns = list(live.demo.fns.values())
    limits = {fn.api_name: limit(fn) for fn in fns if fn.api_name in ("diagnose", "predict", "evaluate")}
    batched = BATCHED_CONCURRENCY if live.registry.batcher is not None else CONCURRENCY_LIMIT
    assert limits == {"diagnose": batched, "predict": batched, "evaluate": 1}
    evaluate = [fn for fn in fns if getattr(fn.fn, "__qualname__", "").startswith("Evaluation.run")]
    assert len(evaluate) == 2 and {(fn.concurrency_id, limit(fn)) for fn in evaluate} == {("evaluate", 1)}


def settle(page, *elem_ids: str) -> None:
    """Wait until the outputs are no longer pending (Gradio fades them while an event runs)."""
    from playwright.sync_api import expect

    for elem_id in elem_ids:
        tracker = page.locator(f"#{elem_id} [data-testid=status-tracker]").first
        expect(tracker).to_have_class(re.compile(r"\bhide\b"), timeout=30_000)


def chromium_or_skip() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return path


def run_and_wait(page, timeout_ms: int = 90_000) -> None:
    from playwright.sync_api import expect

    page.locator("#run").click()
    expect(page.locator("#counter")).to_contain_text("Done", timeout=timeout_ms)


def upload(page, path: Path | str) -> None:
    """Put a file in the upload box (clearing the one there first, as a user would)."""
    clear = page.locator("#upload button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator("#upload input[type=file]").set_input_files(str(path))


def record_requests(page, urls: list[str]) -> None:
    """Note the URL of every request and web socket ``page`` opens (before any of them is sent)."""
    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", lambda socket: urls.append(socket.url))


def record_errors(page, errors: list[str], where: str) -> None:
    """Note every ``console.error`` and every uncaught error of ``page``."""
    page.on("console", lambda m: m.type == "error" and errors.append(f"{where}: console.error {m.text}"))
    page.on("pageerror", lambda err: errors.append(f"{where}: page error {err}"))


def plot_data(page, elem_id: str) -> list[dict]:
    """The traces plotly is drawing in the plot ``#elem_id`` (name, y)."""
    return page.eval_on_selector(
        f"#{elem_id} .js-plotly-plot",
        "gd => gd.data.map(t => ({name: t.name || '', y: Array.from(t.y || [])}))",
    )


def replay_and_scrub(page, T: int) -> None:
    """After a run: Play replays it from the start to the card's numbers, and the slider moves the figures."""
    from playwright.sync_api import expect

    box, bars = page.locator("#replay-box"), page.locator("#bars .gtitle").first
    expect(box).to_be_visible()
    expect(bars).to_contain_text("Final probabilities")
    final = plot_data(page, "bars")
    page.locator("#replay-play").click()
    expect(bars).not_to_contain_text("Final probabilities", timeout=10_000)  # it started again
    expect(bars).to_contain_text("Final probabilities", timeout=60_000)  # and ran to the end
    assert plot_data(page, "bars")[0]["y"] == final[0]["y"]
    expect(page.locator("#trajectory .js-plotly-plot")).to_contain_text("t = 0")  # the "now" line at the end
    before = plot_data(page, "trajectory")
    page.locator("#replay input[type=range]").fill(str(T // 3))
    expect(bars).to_contain_text(f"After {T // 3} of {T} steps", timeout=20_000)
    assert plot_data(page, "trajectory") != before  # the figure follows the slider


def learn_prior_control(page) -> None:
    """Learn: the lesson is shown on opening, and centring the prior on another class moves the chains."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Learn").click()
    expect(page.locator("#forward .gtitle").first).to_contain_text("t = 0 of", timeout=60_000)
    expect(page.locator("#learn-intro")).to_contain_text("This lesson's image")
    before = plot_data(page, "learn-ddpm")
    page.locator("#learn-prior").get_by_text("Mild", exact=True).click()
    expect(page.locator("#forward-note")).to_contain_text("a prior all on Mild", timeout=60_000)
    settle(page, "learn-ddpm", "reverse")
    after = plot_data(page, "learn-ddpm")
    assert after != before  # the chain followed the prior
    centre = next(t for t in plot_data(page, "reverse") if t["name"].startswith("prior"))
    assert centre["y"] == [0.0 if name != "Mild" else 1.0 for name in FUNDUS]


def words_broken(page, selector: str) -> list[int]:
    """For each matching element, how many line breaks fall inside a word or a number (0 = none); a
    break after a hyphen or a slash is a normal one."""
    return page.eval_on_selector_all(
        selector,
        """els => els.map(el => {
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            let broken = 0, node;
            while ((node = walker.nextNode())) {
                const text = node.textContent;
                let top = null, prev = " ";
                for (let i = 0; i < text.length; i++) {
                    const range = document.createRange();
                    range.setStart(node, i); range.setEnd(node, i + 1);
                    const rect = range.getClientRects()[0];
                    if (!rect) continue;
                    const y = Math.round(rect.top);
                    const joined = /\\S/.test(text[i]) && /\\S/.test(prev) && !/[-–—\\/]/.test(prev);
                    if (top !== null && y > top + 2 && joined) broken++;  // a break after a hyphen is fine
                    top = y; prev = text[i];
                }
            }
            return broken; })""",
    )


def texts_clipped(page, selector: str) -> list[str]:
    """The texts of visible matching cells that reach past the box clipping them (the cell, or the nearest
    element inside it that hides overflow): a word cut at a column's edge."""
    return page.eval_on_selector_all(
        selector,
        """els => els.flatMap(cell => {
            const box = cell.getBoundingClientRect();
            if (box.width === 0 || box.height === 0) return [];
            const cut = [], walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            let node;
            while ((node = walker.nextNode())) {
                const range = document.createRange(); range.selectNodeContents(node);
                const text = range.getBoundingClientRect();
                if (!node.textContent.trim() || text.width === 0) continue;  // hidden menu glyphs
                let clip = box;
                for (let el = node.parentElement; el && el !== cell.parentElement; el = el.parentElement) {
                    if (getComputedStyle(el).overflowX === "visible") continue;
                    clip = el.getBoundingClientRect();
                    break;
                }
                const out = text.right > clip.right + 1 || text.left < clip.left - 1;
                if (out) cut.push(node.textContent.trim());
            }
            return cut; })""",
    )


def sideways_scroller(page, selector: str) -> dict | None:
    """The element between ``selector``'s table and the page that scrolls sideways: its overflow and the
    background that draws the scroll shadow; None when nothing inside is wider than its box."""
    return page.eval_on_selector(
        selector,
        """root => {
            const stop = root.parentElement;
            for (let el = root.querySelector("table"); el && el !== stop; el = el.parentElement) {
                if (el.scrollWidth > el.clientWidth + 1) {
                    const s = getComputedStyle(el);
                    return {overflow: s.overflowX, shadow: s.backgroundImage};
                }
            }
            return null; }""",
    )


@pytest.mark.slow
@pytest.mark.browser
def test_browser_end_to_end(live, tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (90, 90, 90)).save(blank)
    dataset = make_dataset_zip(tmp_path, n_per_class=2)
    shots = Path(os.environ.get("DIFFMIC_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    T = live.T
    urls: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            record_requests(page, urls)
            record_errors(page, errors, "1400 x 900")
            page.goto(live.url)
            expect(page.locator("#run")).to_be_visible(timeout=30_000)
            expect(page.locator("#model-status")).to_contain_text("derm")
            box = page.locator("#run").bounding_box()
            assert box["y"] + box["height"] <= 900, "Run must be reachable without scrolling at 1400 x 900"

            # Upload an example, run, and read the answer, the trajectory and the maps.
            upload(page, live.example)
            expect(page.locator("#preview img")).to_be_visible(timeout=20_000)
            run_and_wait(page)
            expect(page.locator("#answer")).to_contain_text("probability")
            expect(page.locator("#answer")).to_contain_text("not for clinical use")
            expect(page.locator("#answer")).not_to_contain_text("cannot be assessed")
            assert page.locator("#trajectory .js-plotly-plot .scatterlayer .trace").count() >= 2 * len(FUNDUS)
            assert page.locator("#bars .js-plotly-plot .barlayer .trace").count() >= 1
            for name in ("original", "heat", "rois"):
                expect(page.locator(f"#{name} img")).to_be_visible()
                assert page.locator(f"#{name} img").bounding_box()["width"] >= 384
            assert page.locator("#crops img").count() >= 1
            expect(page.locator("#crops")).to_contain_text("1 · ")
            box = page.locator("#crops").bounding_box()
            for crop in page.locator("#crops img").all():  # every patch shown whole, none cut off
                b = crop.bounding_box()
                assert box["x"] - 1 <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1
                assert box["y"] - 1 <= b["y"] and b["y"] + b["height"] <= box["y"] + box["height"] + 1
            expect(page.locator("#downloads")).to_contain_text(".csv")
            expect(page.locator("#downloads .label-clear-button").first).to_be_hidden()  # no "remove"
            expect(page.locator("#downloads")).not_to_contain_text(".png")
            page.locator("#make-figure").click()  # the PNG is made when asked for
            expect(page.locator("#downloads")).to_contain_text(".png", timeout=30_000)
            before = page.locator("#heat img").get_attribute("src")
            page.locator("#heat-choice").get_by_text("Grad-CAM").click()  # made on first use
            expect(page.locator("#heat img")).not_to_have_attribute("src", before, timeout=30_000)
            page.locator("#details-box").get_by_text("Details").click()
            expect(page.locator("#details")).to_contain_text("paired t-test", timeout=30_000)
            settle(page, "trajectory", "answer", "heat")
            page.screenshot(path=str(shots / "diagnose.png"), full_page=True)
            replay_and_scrub(page, T)
            traces = page.locator("#trajectory .js-plotly-plot .scatterlayer .trace")
            shown = traces.count()
            page.locator("#each-run input").check()  # each run as a thin line, and a legend entry for them
            expect(traces).to_have_count(shown + APP_DEFAULT.samples * len(FUNDUS) + 1, timeout=20_000)

            # A new image clears the old results.
            upload(page, next(p for p in live.examples if p != live.example))
            expect(page.locator("#answer")).to_contain_text("Run to see the answer here")
            expect(page.locator("#replay-box")).to_be_hidden()
            expect(page.locator("#heat img")).to_have_count(0)
            expect(page.locator("#downloads")).not_to_contain_text(".csv")

            # Stop halfway: the counter says where, and the page runs again afterwards.
            SLOW["seconds"] = 4.0 / T
            try:
                page.locator("#run").click()
                expect(page.locator("#counter")).to_contain_text(
                    re.compile(r"Step [1-9]\d* of"), timeout=30_000
                )
                # force: while the plots redraw ten times a second Playwright never finds the page "stable"
                page.locator("#stop").click(force=True)
                expect(page.locator("#counter")).to_contain_text(
                    re.compile(rf"Stopped at step \d+ of {T}"), timeout=20_000
                )
            finally:
                SLOW["seconds"] = 0.0
            expect(page.locator("#answer")).to_contain_text("no answer")
            run_and_wait(page)

            # An image unlike the training data: "cannot be assessed" first, another model suggested, and
            # no class name in bold until "show the model's answer anyway" is opened.
            upload(page, blank)
            run_and_wait(page)
            card = page.locator("#answer")
            expect(card).to_contain_text("cannot be assessed by this model")
            expect(card.locator(".cannot-assess")).to_contain_text("derm")
            expect(card.locator("details.unreliable h4")).to_be_hidden()
            assert not [
                t
                for t in card.locator("strong:visible, b:visible, h3:visible, h4:visible").all_inner_texts()
                if any(n in t for n in FUNDUS)
            ]
            card.get_by_text("Show the model's answer anyway").click()
            expect(card.locator("details.unreliable h4")).to_contain_text("probability")

            # Learn: the figures are there on opening the tab, Play moves t forward and back, and the
            # prior control moves the chains.
            page.get_by_role("tab", name="Learn").click()
            title = page.locator("#forward .gtitle").first
            expect(title).to_contain_text("t = 0 of", timeout=60_000)
            page.locator("#forward-play").click()
            expect(title).to_contain_text(re.compile(r"t = [1-9]\d* of"), timeout=20_000)
            expect(page.locator("#learn-ddim .js-plotly-plot")).to_be_visible()
            page.locator("#forward-pause").click()
            page.locator("#reverse-play").click()
            expect(page.locator("#reverse .gtitle").first).to_contain_text("t = 0,", timeout=60_000)
            expect(page.locator("#schedule .gtitle").first).to_contain_text("t = 0")
            settle(page, "forward", "learn-ddim")
            page.screenshot(path=str(shots / "learn.png"), full_page=True)
            learn_prior_control(page)

            # Evaluate a zip.
            page.get_by_role("tab", name="Evaluate").click()
            expect(page.locator("#eval-generated")).to_be_enabled()
            page.locator("#eval-zip input[type=file]").set_input_files(str(dataset))
            page.locator("#eval-run").click()
            expect(page.locator("#eval-metrics")).to_contain_text("Accuracy", timeout=60_000)
            expect(page.locator("#confusion .js-plotly-plot")).to_be_visible()
            expect(page.locator("#eval-table")).to_contain_text(".png")
            settle(page, "confusion", "eval-table")
            page.screenshot(path=str(shots / "evaluate.png"), full_page=True)

            # A corrupt upload is reported beside the upload, not a crash.
            page.get_by_role("tab", name="Diagnose").click()
            upload(page, bad)
            expect(page.locator("#error")).to_contain_text("corrupt or truncated", timeout=20_000)
            page.locator("#run").click()
            expect(page.locator("#error")).to_contain_text("corrupt or truncated")
            page.locator("#upload button[aria-label=Clear]").click()
            expect(page.locator("#error")).to_be_hidden()

            # A phone: nothing wider than the screen, no word or number broken in the tables.
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            record_requests(phone, urls)
            record_errors(phone, errors, "390 x 844")
            phone.goto(live.url)
            expect(phone.locator("#run")).to_be_visible(timeout=30_000)
            upload(phone, live.example)
            run_and_wait(phone)
            phone.locator("#details-box").get_by_text("Details").click()
            expect(phone.locator("#details")).to_contain_text("paired t-test", timeout=30_000)
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            cells = "#details td, #details th, #answer h3, #answer p"
            assert phone.locator("#details td").count() >= 10 and set(words_broken(phone, cells)) == {0}
            settle(phone, "trajectory", "answer", "heat")
            for name in ("rois", "crops"):  # images below the screen load once scrolled to
                phone.locator(f"#{name}").scroll_into_view_if_needed()
                expect(phone.locator(f"#{name} img").first).to_be_visible()
            assert phone.locator("#crops img").evaluate_all("imgs => imgs.every(i => i.complete)")
            phone.screenshot(path=str(shots / "diagnose-mobile.png"), full_page=True)
            replay_and_scrub(phone, T)
            learn_prior_control(phone)
            phone.get_by_role("tab", name="Evaluate").click()
            expect(phone.locator("#eval-generated")).to_be_enabled()
            phone.locator("#eval-zip input[type=file]").set_input_files(str(dataset))
            phone.locator("#eval-run").click()
            expect(phone.locator("#eval-metrics")).to_contain_text("Accuracy", timeout=60_000)
            expect(phone.locator("#eval-table")).to_contain_text(".png")
            settle(phone, "confusion", "eval-table")
            cells = "#eval-metrics td, #eval-metrics th, #eval-table td, #eval-table th"
            assert phone.locator("#eval-table td").count() >= 4 and set(words_broken(phone, cells)) == {0}
            assert texts_clipped(phone, "#eval-table td, #eval-table th, #eval-table .body-cell") == []
            scroller = sideways_scroller(phone, "#eval-table")  # wider than the phone: scrolls, and shows it
            assert scroller is not None and scroller["overflow"] in ("auto", "scroll")
            assert "radial-gradient" in scroller["shadow"]
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            phone.screenshot(path=str(shots / "evaluate-mobile.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, "\n".join(errors)  # no console error and no uncaught error, on any tab
    for name in ("diagnose", "learn", "evaluate", "diagnose-mobile"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
    # the page loads nothing from another host: no web font, no CDN script, no analytics
    network = [urlparse(u) for u in urls if urlparse(u).scheme not in ("data", "blob")]
    elsewhere = sorted({u.geturl() for u in network if u.hostname not in ("127.0.0.1", "localhost")})
    assert len(network) > 20 and {u.scheme for u in network} <= {"http", "ws"}
    assert not elsewhere, f"requests to other hosts: {elsewhere}"
