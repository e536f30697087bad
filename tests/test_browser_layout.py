"""The Diagnose page's layout in a real Chromium, at 1400 x 900 and at 390 x 844 (issue 24 item 6, issue 25
item 5): a loaded image is replaced by choosing or dropping another without the ✕, every example and its
caption is shown whole, no text runs under a chevron or is cut in a table, a caption or a dropdown, the
upload icon clears its label, Plotly's toolbar covers no title, wide tables show that they scroll, the ROI
patches are shown pixel for pixel, and on a phone Run is on the first screen.

The app is the one ``tests.test_app_live`` starts (its ``live`` fixture: tiny random models), once for
this module.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests import test_app_live
from tests.test_app_live import CHROMIUM_ARGS, chromium_or_skip, run_and_wait, settle

pytestmark = [pytest.mark.slow, pytest.mark.browser]
live = test_app_live.live  # the app, started once for this module

DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}

# Elements whose text would be cut if wider than their box (scrollWidth > clientWidth): table cells,
# captions, dropdown inputs, labels and the answer card. The scrolling table itself is left out.
TEXT = (
    "#details td, #details th, #examples .caption-label, #crops .caption-label, .secondary-wrap input, "
    "[data-testid=block-info], #answer h3, #answer p, .map-title p"
)
CUT = """sel => [...document.querySelectorAll(sel)].filter(e => e.getClientRects().length)
    .filter(e => e.clientWidth > 2)  // not the screen-reader-only labels (1 px wide by design)
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => (e.value || e.textContent).trim())"""
INNER_SCROLL = """sel => [...document.querySelectorAll(sel + ' *')].filter(e =>
    ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowY)
    && e.scrollHeight > e.clientHeight + 1 && e.clientHeight > 40).map(e => e.className)"""
OVERLAPS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.getClientRects().length)
    .flatMap(p => {
        const bar = p.querySelector('.modebar'), title = p.querySelector('.gtitle');
        if (!bar || !title || !bar.getClientRects().length || !title.textContent.trim()) return [];
        const a = bar.getBoundingClientRect(), b = title.getBoundingClientRect();
        const hit = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        return hit ? [title.textContent] : [];
    })"""


def open_page(browser, viewport: dict, url: str):
    from playwright.sync_api import expect

    page = browser.new_page(viewport=viewport)
    page.goto(url)
    expect(page.locator("#run")).to_be_visible(timeout=30_000)
    expect(page.locator("#examples .caption-label").first).to_be_visible(timeout=30_000)
    return page


def gallery_shown_whole(page) -> None:
    """No inner scroll area in the example gallery; each caption whole, on screen and in the gallery."""
    page.locator("#examples").scroll_into_view_if_needed()
    assert page.evaluate(INNER_SCROLL, "#examples") == []
    box = page.locator("#examples").bounding_box()
    height = page.viewport_size["height"]
    assert box["height"] <= height, "the gallery is taller than the screen"
    page.evaluate("y => window.scrollTo(0, window.scrollY + y)", box["y"])  # the gallery at the top
    box = page.locator("#examples").bounding_box()
    captions = page.locator("#examples .caption-label")
    assert captions.count() == len(page.locator("#examples img").all()) >= 5
    for caption in captions.all():
        b = caption.bounding_box()
        assert 0 <= b["y"] and b["y"] + b["height"] <= height, f"{caption.inner_text()} is off screen"
        assert box["y"] <= b["y"] and b["y"] + b["height"] <= box["y"] + box["height"] + 1
        assert box["x"] <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1
    assert page.evaluate(CUT, "#examples .caption-label") == []


def controls_clear(page) -> None:
    """The upload icon below its floating label, inside the box; dropdown text clear of the chevron."""
    label = page.locator("#upload [data-testid=block-label]").bounding_box()
    icon = page.locator("#upload [data-testid=upload-icon]").bounding_box()
    box = page.locator("#upload").bounding_box()
    assert (
        icon["y"] >= label["y"] + label["height"] - 1
        and icon["y"] + icon["height"] <= box["y"] + box["height"]
    )
    for dropdown in page.locator(".secondary-wrap").all():
        if not dropdown.is_visible():
            continue
        text_right, chevron_left = dropdown.evaluate(
            """w => { const i = w.querySelector('input'), c = w.querySelector('.icon-wrap');
                const s = getComputedStyle(i);
                return [i.getBoundingClientRect().right - parseFloat(s.paddingRight),
                        c ? c.getBoundingClientRect().left : Infinity]; }"""
        )
        assert text_right <= chevron_left + 1, "dropdown text runs under its chevron"


def png_base64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def replace_without_clear(page, first, second, third) -> None:
    """Load an example, then replace it by choosing a second file and by dropping a third, never with ✕."""
    from playwright.sync_api import expect

    page.locator("#upload input[type=file]").set_input_files(str(first))
    expect(page.locator("#upload")).to_contain_text(first.stem, timeout=20_000)
    expect(page.locator("#preview img")).to_be_visible(timeout=20_000)
    run_and_wait(page)
    expect(page.locator("#answer")).to_contain_text("probability")
    before = page.locator("#preview img").get_attribute("src")
    chooser = page.locator("#upload input[type=file]")  # the loaded box still holds a file input
    expect(chooser).to_have_count(1)
    expect(page.locator("#upload")).to_contain_text("Drop another image here")
    chooser.set_input_files(str(second))
    expect(page.locator("#upload")).to_contain_text(second.stem, timeout=20_000)
    expect(page.locator("#preview img")).not_to_have_attribute("src", before, timeout=20_000)
    expect(page.locator("#answer")).to_contain_text("Run to see the answer here")  # the old answer went
    run_and_wait(page)
    expect(page.locator("#answer")).to_contain_text("probability")
    before = page.locator("#preview img").get_attribute("src")
    data = page.evaluate_handle(
        """([b64, name]) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: 'image/png'}));
            return dt; }""",
        [png_base64(third), third.name],
    )
    page.locator("#upload .file-preview-holder").dispatch_event("drop", {"dataTransfer": data})
    expect(page.locator("#upload")).to_contain_text(third.stem, timeout=20_000)
    expect(page.locator("#preview img")).not_to_have_attribute("src", before, timeout=20_000)
    expect(page.locator("#answer")).to_contain_text("Run to see the answer here")


def no_cut_words(page) -> None:
    cut = page.evaluate(CUT, TEXT)
    assert cut == [], f"text cut: {cut}"


def toolbar_over_no_title(page) -> None:
    for plot in page.locator(".js-plotly-plot").all():
        if plot.is_visible():
            plot.hover()  # Plotly shows its toolbar on hover
            assert page.evaluate(OVERLAPS) == []


def crops_pixel_for_pixel(page) -> None:
    """Patches enlarged by a whole factor with nearest neighbour, shown pixelated, with their size."""
    crops = page.locator("#crops img")
    assert crops.count() >= 1
    assert set(crops.evaluate_all("imgs => imgs.map(i => getComputedStyle(i).imageRendering)")) == {
        "pixelated"
    }
    captions = page.locator("#crops .caption-label").all_inner_texts()
    assert captions and all(c.endswith(" px") and "×" in c for c in captions)


def table_scroll_cue(page) -> None:
    """A table wider than the screen scrolls, and shows it: the side with more is shaded (measured as the
    difference between the table's pixels with and without its background)."""
    from io import BytesIO

    import numpy as np
    from PIL import Image

    table = page.locator("#details table").first
    table.scroll_into_view_if_needed()
    width, inner = table.evaluate("t => [t.clientWidth, t.scrollWidth]")
    assert inner > width, "the details table fits the phone: nothing to cue"

    def edges() -> tuple[float, float]:
        def darkness(shot: bytes) -> np.ndarray:
            return 255 - np.asarray(Image.open(BytesIO(shot)).convert("L"), dtype=float)

        with_cue = darkness(table.screenshot())
        background = table.evaluate(
            "t => { const b = t.style.background; t.style.background = 'none'; return b; }"
        )
        without = darkness(table.screenshot())
        table.evaluate("(t, b) => { t.style.background = b; }", background)
        extra = with_cue - without
        return float(extra[:, 1:5].mean()), float(extra[:, -5:-1].mean())

    left, right = edges()
    assert right > 3 and left < 0.5, (left, right)  # more to the right: the right edge is shaded
    table.evaluate("t => { t.scrollLeft = t.scrollWidth; }")
    left, right = edges()
    assert left > 3 and right < 0.5, (left, right)  # at the end: the left edge is shaded instead
    table.evaluate("t => { t.scrollLeft = 0; }")


@pytest.fixture(scope="module")
def browser():
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400x900", "390x844"])
def test_diagnose_layout(live, browser, viewport):
    from playwright.sync_api import expect

    page = open_page(browser, viewport, live.url)
    try:
        run_box = page.locator("#run").bounding_box()
        assert run_box["y"] + run_box["height"] <= viewport["height"], "Run is below the first screen"
        if viewport is DESKTOP:
            gallery_shown_whole(page)
        else:
            assert page.evaluate(CUT, "#examples .caption-label") == []
        page.evaluate("window.scrollTo(0, 0)")
        controls_clear(page)
        first, second, third = live.examples[:3]
        replace_without_clear(page, first, second, third)
        page.evaluate("window.scrollTo(0, 0)")
        run_box = page.locator("#run").bounding_box()
        assert run_box["y"] + run_box["height"] <= viewport["height"], "an image pushed Run off the screen"
        run_and_wait(page)
        page.locator("#details-box").get_by_text("Details").click()
        expect(page.locator("#details")).to_contain_text("paired t-test", timeout=30_000)
        settle(page, "trajectory", "answer", "bars")
        no_cut_words(page)
        toolbar_over_no_title(page)
        page.locator("#crops").scroll_into_view_if_needed()
        crops_pixel_for_pixel(page)
        if viewport is PHONE:
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            table_scroll_cue(page)
        shots = os.environ.get("DIFFMIC_SCREENSHOTS_DIR")
        if shots:  # to look at: layout-1400x900.png, layout-390x844.png
            name = f"layout-{viewport['width']}x{viewport['height']}.png"
            page.screenshot(path=str(Path(shots) / name), full_page=True)
    finally:
        page.close()
