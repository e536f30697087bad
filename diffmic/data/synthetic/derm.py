"""Synthetic dermoscopy images of four ISIC 2018 diagnoses (not ordinal).

Scene (every class): skin of a random tone with mottling and a colour cast; one lesion near the
centre (radius 16-30 % of the side, random elongation and orientation); w.p. 0.35 dark hairs across
the image, w.p. 0.35 the round black frame of a contact dermoscope, w.p. 0.15 a few gel bubbles; then
uneven illumination, vignetting, gamma, defocus blur and sensor noise. The mask is the lesion region
(including any streaks around it), so it is never empty in this task.

Classes and their local patterns:

* NV (melanocytic nevus) and MEL (melanoma) share one "melanocytic" renderer driven by an atypia
  score s in [0, 1] - NV draws s ~ Beta(2, 5), MEL draws s ~ Beta(5, 2), so 11 % of each fall on the
  other side of 0.5 and look more like the other class. From s: border irregularity 0.03 + 0.2 s;
  1 + round(4 s + noise) colours (light brown, dark brown, black, blue-grey, red, white), symmetric
  and darker in the centre when s is low, in asymmetric patches when s is high; a pigment network
  (w.p. 0.85) that is fine, regular and fades out at the border for low s, thick, broken and distorted
  for high s; Poisson(2 + 10 s) dots/globules, small brown and central for low s, black, uneven and
  peripheral for high s; Poisson(14 max(0, s - 0.45)) streaks (pseudopods) bunched in one sector of
  the border; a blue-white veil w.p. 1.6 max(0, s - 0.45); a white scar-like regression area with
  grey peppering w.p. 0.6 max(0, s - 0.35).
* BCC (basal cell carcinoma): a pale pink, translucent lesion with no network; 2 + Poisson(1.5)
  trees of bright-red sharply focused arborizing vessels; Poisson(1.5) blue-grey ovoid nests; an
  ulceration crust w.p. 0.3. Mimic: w.p. 0.15 a pigmented BCC - brown base, 4-8 blue-grey nests and
  black dots, at most one small vessel tree - that resembles a melanoma.
* BKL (benign keratosis, seborrhoeic keratosis type): a sharply demarcated "stuck-on" tan-brown
  lesion with waxy texture; brain-like fissures and ridges w.p. 0.7; 1 + Poisson(4) white milia-like
  cysts; Poisson(3) dark comedo-like openings. Mimic: w.p. 0.15 a flat reticulated keratosis - soft
  border, a faint regular network, no cysts, openings or fissures - that resembles a nevus.

The best possible reader of these patterns is right on 94.5 % of the images (exact, ``ceiling.py``):
7/64 = 11 % of NV and of MEL cross the atypia threshold, and nothing in the image can tell; the mimics
keep their own renderer, so they can be told apart in principle, however hard.

Here: the plan, the scene around the lesion and the ``LAW``; the lesions are painted by ``derm_lesions.py``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ._draw import (
    Layer,
    blur,
    gradient,
    grid,
    paint,
    random_walk,
    smoothstep,
    to_uint8,
    value_noise,
    vignette,
)
from .derm_lesions import bcc, bkl, melanocytic
from .law import Law, bern, fixed
from .sample import Sample

CLASS_DESCRIPTIONS = {
    "NV": "melanocytic nevus: symmetric, one or two browns, regular pigment network, regular globules",
    "MEL": "melanoma: asymmetric, many colours, atypical network, streaks, blue-white veil, irregular dots",
    "BCC": "basal cell carcinoma: pink translucent lesion, arborizing vessels, blue-grey ovoid nests",
    "BKL": "benign keratosis: sharp 'stuck-on' border, milia-like cysts, comedo-like openings, fissures",
}
DESCRIPTION = "Dermoscopy (ISIC 2018 style), 4 diagnoses told apart by local patterns: " + "; ".join(
    f"{k} = {v}" for k, v in CLASS_DESCRIPTIONS.items()
)


def sample_plan(rng: np.random.Generator, label: int) -> dict:
    """The class's style: which renderer, its atypia score or mimic flag."""
    if label == 0:
        return {"kind": "melanocytic", "s": float(rng.beta(2, 5))}
    if label == 1:
        return {"kind": "melanocytic", "s": float(rng.beta(5, 2))}
    if label == 2:
        return {"kind": "bcc", "pigmented": bool(rng.random() < 0.15)}
    if label == 3:
        return {"kind": "bkl", "reticulated": bool(rng.random() < 0.15)}
    raise ValueError(f"derm label must be 0..3, got {label}")


def add_hair(rng: np.random.Generator, img: np.ndarray, size: int) -> None:
    """A few dark, gently curved hairs across the image."""
    hair = Layer(size)
    for _ in range(int(rng.integers(3, 16))):
        x, y = rng.uniform(-0.1, 1.1, 2)
        xs, ys, _ = random_walk(rng, x, y, rng.uniform(0, 2 * np.pi), 12, rng.uniform(0.03, 0.07), 0.06)
        hair.line(xs, ys, rng.uniform(0.002, 0.005), min_px=0.6)
    paint(img, 0.9 * hair.alpha(), np.array([0.16, 0.11, 0.09]) * rng.uniform(0.6, 1.3))


def add_bubbles(rng: np.random.Generator, img: np.ndarray, size: int) -> None:
    """Air bubbles in the immersion gel: faint bright rings."""
    rings = Layer(size)
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    for _ in range(int(rng.integers(1, 5))):
        x, y, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.02, 0.07)
        rings.ring(x + r * np.cos(t), y + r * np.sin(t), 0.004, min_px=0.7)
    paint(img, 0.5 * rings.alpha(blur=0.002), (1.0, 1.0, 1.0))


def draw_plan(rng: np.random.Generator, label: int) -> dict:
    """The first draws of ``generate``, all that the label decides, without rendering:
    the pixel-noise seed, then the class's style."""
    plan = {"noise_seed": int(rng.integers(2**63))}
    plan.update(sample_plan(rng, label))
    return plan


def generate(rng: np.random.Generator, label: int, size: int) -> Sample:
    """Render one dermoscopy image of class ``label`` at size x size, with the lesion mask."""
    plan = draw_plan(rng, label)
    noise_rng = np.random.default_rng(plan["noise_seed"])  # pixel noise: the only size-dependent draws
    tone = rng.uniform(0, 1)
    skin = (1 - tone) * np.array([0.95, 0.80, 0.72]) + tone * np.array([0.76, 0.55, 0.42])
    skin = skin * rng.uniform(0.92, 1.08, 3)
    mottle = 1 + 0.04 * value_noise(rng, size, 5)[..., None] * np.array([0.6, 1.0, 1.0])
    img = (skin * mottle).astype(np.float32)
    paint(img, 0.25 * smoothstep(0.5, 1.5, value_noise(rng, size, 4)), (0.90, 0.55, 0.55))  # redness

    streak_mask = None
    if plan["kind"] == "melanocytic":
        region, streaks = melanocytic(rng, img, size, plan["s"])
        streak_mask = streaks.alpha() > 0.4
    elif plan["kind"] == "bcc":
        region = bcc(rng, img, size, plan["pigmented"])
    else:
        region = bkl(rng, img, size, plan["reticulated"])
    mask = region > 0.5
    if streak_mask is not None:
        mask |= streak_mask

    if rng.random() < 0.35:
        add_hair(rng, img, size)
    if rng.random() < 0.15:
        add_bubbles(rng, img, size)
    img *= (gradient(size, rng, rng.uniform(0.1, 0.35)) * vignette(size, rng.uniform(0.05, 0.35)))[..., None]
    if rng.random() < 0.35:  # contact dermoscope: a round field in a black frame
        yy, xx = grid(size)
        r = np.hypot(xx - 0.5 - rng.normal(0, 0.03), yy - 0.5 - rng.normal(0, 0.03))
        img *= smoothstep(0.0, 0.02, rng.uniform(0.55, 0.72) - r)[..., None]
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.2)
    img = blur(img, rng.uniform(0.0, 0.004))
    img += noise_rng.normal(0, rng.uniform(0.005, 0.02), img.shape).astype(np.float32)
    return Sample(image=to_uint8(img), label=int(label), mask=mask)


_KINDS = ("melanocytic", "bcc", "bkl")
# what an image shows of its plan (the Bayes ceiling's ``law.Law``): the kind of lesion and, if melanocytic,
# the atypia score's side of 0.5
LAW = Law(
    ("kind", "atypical"),
    lambda p: (_KINDS.index(p["kind"]), int(p["kind"] == "melanocytic" and p["s"] >= 0.5)),
    (
        (fixed(0), bern(stats.beta(2, 5).sf(0.5))),  # NV
        (fixed(0), bern(stats.beta(5, 2).sf(0.5))),  # MEL
        (fixed(1), fixed()),  # BCC
        (fixed(2), fixed()),  # BKL
    ),
)
