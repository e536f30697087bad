"""The app launched on 127.0.0.1: called with gradio_client, then driven in a real Chromium browser.

The browser test saves a screenshot of each tab ({diagnose,learn,evaluate}.png) in a temporary folder,
or in ``DIFFMIC_SCREENSHOTS_DIR`` when set. They come from a tiny random model;
``DIFFMIC_SCREENSHOTS_WITH_BUNDLED=1`` uses the repo's own ``weights/fundus`` and ``assets/fundus``
instead (when they exist). The README's screenshots were made with
``DIFFMIC_SCREENSHOTS_WITH_BUNDLED=1 DIFFMIC_SCREENSHOTS_DIR=docs/screenshots pytest tests/test_app_live.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from app.diagnose import OUTPUTS
from app.models import ModelRegistry
from app.server import launch
from app.settings import Settings
from app.ui import build_demo
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


@dataclass
class Live:
    url: str
    settings: Settings
    registry: ModelRegistry
    example: Path
    root: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundled_settings() -> Settings | None:
    """The repo's own weights/ and assets/, when DIFFMIC_SCREENSHOTS_WITH_BUNDLED=1 and they exist."""
    if os.environ.get("DIFFMIC_SCREENSHOTS_WITH_BUNDLED") != "1":
        return None
    settings = Settings(REPO / "weights", REPO / "assets", None, 1)
    if "fundus" not in ModelRegistry(settings).available() or not list(
        (REPO / "assets" / "fundus").glob("*.png")
    ):
        return None
    return settings


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    settings = bundled_settings() or make_app_dirs(root, n_examples=5, image_size=96)
    registry = ModelRegistry(settings)
    demo = build_demo(settings, registry)
    threads = torch.get_num_threads()
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
    example = next((p for p in examples if "moderate" in p.name), examples[0])
    try:
        yield Live(url, settings, registry, example, root)
    finally:
        demo.close()
        torch.set_num_threads(threads)


def test_gradio_client_gets_a_label_and_a_trajectory(live):
    from gradio_client import Client, handle_file

    client = Client(live.url, verbose=False)
    job = client.submit(handle_file(str(live.example)), "fundus", "DDPM", 100, 4, 0, api_name="/diagnose")
    final = dict(zip(OUTPUTS, job.result(timeout=120), strict=True))
    assert final["label"]["label"] in FUNDUS
    assert len(final["label"]["confidences"]) == len(FUNDUS)
    plot = json.loads(final["trajectory"]["plot"])
    lines = [t for t in plot["data"] if t.get("mode") == "lines"]
    assert [t["name"] for t in lines] == FUNDUS and len(lines[0]["x"]) == 100
    assert "Done: 100 / 100 steps" in final["counter"]

    answer = client.predict(handle_file(str(live.example)), "fundus", "ddpm", 0, 4, 0, api_name="/predict")
    expected = live.registry.get("fundus").model.predict(str(live.example), samples=4, seed=0).to_json()
    assert set(answer) == set(expected)
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


@pytest.mark.slow
@pytest.mark.browser
def test_browser_end_to_end(live, tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    dataset = make_dataset_zip(tmp_path, n_per_class=2)
    shots = Path(os.environ.get("DIFFMIC_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(live.url)
            expect(page.locator("#run")).to_be_visible(timeout=30_000)
            expect(page.locator("#model-status")).to_contain_text("derm")

            # Upload an example, run, and wait for the answer.
            page.locator("#upload input[type=file]").set_input_files(str(live.example))
            expect(page.locator("#preview img")).to_be_visible(timeout=20_000)
            page.locator("#run").click()
            expect(page.locator("#counter")).to_contain_text("Done", timeout=60_000)
            expect(page.locator("#label")).to_contain_text(re.compile("|".join(map(re.escape, FUNDUS))))
            expect(page.locator("#summary")).to_contain_text("not for clinical use")
            assert page.locator("#trajectory .js-plotly-plot .scatterlayer .trace").count() >= 2 * len(FUNDUS)
            assert page.locator("#bars .js-plotly-plot .barlayer .trace").count() >= 1
            for name in ("saliency", "rois", "gradcam"):
                expect(page.locator(f"#{name} img")).to_be_visible()
            assert page.locator("#crops img").count() >= 1
            expect(page.locator("#downloads")).to_contain_text(".csv")
            settle(page, "trajectory", "label", "gradcam")
            page.screenshot(path=str(shots / "diagnose.png"), full_page=True)

            page.get_by_role("tab", name="Learn").click()
            page.locator("#learn-run").click()
            expect(page.locator("#forward .js-plotly-plot .slider-container")).to_be_visible(timeout=60_000)
            expect(page.locator("#learn-ddim .js-plotly-plot")).to_be_visible()
            settle(page, "forward", "learn-ddim")
            page.screenshot(path=str(shots / "learn.png"), full_page=True)

            page.get_by_role("tab", name="Evaluate").click()
            page.locator("#eval-zip input[type=file]").set_input_files(str(dataset))
            page.locator("#eval-run").click()
            expect(page.locator("#eval-metrics")).to_contain_text("Accuracy", timeout=60_000)
            expect(page.locator("#confusion .js-plotly-plot")).to_be_visible()
            expect(page.locator("#eval-table")).to_contain_text(".png")
            settle(page, "confusion", "eval-table")
            page.screenshot(path=str(shots / "evaluate.png"), full_page=True)

            # A corrupt upload is reported in the page, not a crash.
            page.get_by_role("tab", name="Diagnose").click()
            page.locator("#upload button[aria-label=Clear]").click()
            page.locator("#upload input[type=file]").set_input_files(str(bad))
            expect(page.locator("#error")).to_contain_text("corrupt or truncated", timeout=20_000)
            page.locator("#run").click()
            expect(page.locator("#error")).to_contain_text("corrupt or truncated")
            page.locator("#upload button[aria-label=Clear]").click()
            expect(page.locator("#error")).to_be_hidden()
        finally:
            browser.close()
    for name in ("diagnose", "learn", "evaluate"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
