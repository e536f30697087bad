"""Synthetic colour fundus photographs graded for diabetic retinopathy (APTOS-like, 5 ordinal grades).

Scene (every grade): a round orange-red fundus on black, of random radius (0.42-0.56 of the side, so
some are cropped top and bottom like many APTOS photos) and position, with a random colour cast,
brightness, gamma, uneven illumination, peripheral darkening, choroidal texture, a pale optic disc with
a brighter cup, a darker macula, and branching arteries and veins (four arcades from the disc).
Afterwards the whole photo gets a random defocus blur and sensor noise.

Lesions (all drawn in the posterior pole, away from the optic disc; each is in the mask):

* microaneurysm (MA): tiny dark-red dot, radius 0.5-0.8 % of the side (at least 1 px);
* haemorrhage (HE): dark-red irregular blot, radius 1.2-3 %; 30 % are elongated "flame" shapes;
* hard exudates (EX): a cluster of 3-7 yellow specks (radius 0.4-0.8 %, at least 1 px);
* cotton-wool spot (CWS): pale, fluffy (blurred) irregular patch, radius 2-3.5 %;
* neovascular tuft (NV): a tangle of 7 fine tortuous red vessels within ~3 % of a point 1.1-2.2
  optic-disc radii from the disc centre.

Grading rule, per image (Poisson(m) has mean m; "w.p." = with probability):

* 0 No DR: no lesion. Distractor (not in the mask): w.p. 0.12 one dark dot that looks exactly like an MA.
* 1 Mild: MA = 1 + Poisson(1.5); HE = 1 w.p. 0.15 else 0.
* 2 Moderate: MA = 2 + Poisson(3); HE = Poisson(2); EX clusters = 1 w.p. 0.4 else 0; CWS = 1 w.p. 0.15.
* 3 Severe: MA = 3 + Poisson(4); HE = 3 + Poisson(3.5); EX clusters = 1 + Binomial(2, 0.5);
  CWS = Poisson(1.2). Distractor (not in the mask): w.p. 0.12 one intraretinal microvascular
  abnormality drawn exactly like an NV tuft.
* 4 Proliferative DR: lesions as grade 3, plus NV tufts = 1 (w.p. 0.7) or 2.

The count distributions of adjacent grades overlap on purpose (together with the look-alikes), so
even the best possible lesion counter is right on only 92.3 % of the images (exact, ``ceiling.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._draw import Layer, blob, blur, grid, paint, random_walk, smoothstep, to_uint8, value_noise
from .law import Law, bern, fixed, pois
from .sample import Sample

DESCRIPTION = (
    "Diabetic-retinopathy grading of colour fundus photos (APTOS 2019 style, ICDR grades 0-4): "
    "the grade follows the number and kind of small lesions - microaneurysms, haemorrhages, "
    "hard exudates, cotton-wool spots and, for proliferative DR, new vessels near the optic disc."
)
LESIONS = ("microaneurysm", "haemorrhage", "exudate_cluster", "cotton_wool", "tuft")


def sample_plan(rng: np.random.Generator, grade: int) -> dict[str, int]:
    """How many lesions of each kind (and look-alike distractors) an image of this grade shows."""
    plan = dict.fromkeys((*LESIONS, "lookalike_dot", "lookalike_tuft"), 0)
    if grade == 0:
        plan["lookalike_dot"] = int(rng.random() < 0.12)
    elif grade == 1:
        plan["microaneurysm"] = 1 + rng.poisson(1.5)
        plan["haemorrhage"] = int(rng.random() < 0.15)
    elif grade == 2:
        plan["microaneurysm"] = 2 + rng.poisson(3)
        plan["haemorrhage"] = rng.poisson(2)
        plan["exudate_cluster"] = int(rng.random() < 0.4)
        plan["cotton_wool"] = int(rng.random() < 0.15)
    elif grade in (3, 4):
        plan["microaneurysm"] = 3 + rng.poisson(4)
        plan["haemorrhage"] = 3 + rng.poisson(3.5)
        plan["exudate_cluster"] = 1 + rng.binomial(2, 0.5)
        plan["cotton_wool"] = rng.poisson(1.2)
        if grade == 3:
            plan["lookalike_tuft"] = int(rng.random() < 0.12)
        else:
            plan["tuft"] = 1 + int(rng.random() < 0.3)
    else:
        raise ValueError(f"fundus grade must be 0..4, got {grade}")
    return {k: int(v) for k, v in plan.items()}


@dataclass
class Eye:
    """Where the fundus, optic disc and fovea are (normalised coordinates)."""

    cx: float
    cy: float
    radius: float
    side: int  # +1: optic disc right of the fovea, -1: left
    disc_x: float
    disc_y: float
    disc_r: float
    fovea_x: float
    fovea_y: float


def sample_eye(rng: np.random.Generator) -> Eye:
    """Random fundus geometry."""
    cx, cy = 0.5 + rng.normal(0, 0.015, 2)
    radius = rng.uniform(0.42, 0.56)
    side = 1 if rng.random() < 0.5 else -1
    fovea_x = cx - side * radius * rng.uniform(0.02, 0.10)
    fovea_y = cy + radius * rng.normal(0, 0.04)
    disc_x = fovea_x + side * radius * rng.uniform(0.40, 0.48)
    disc_y = fovea_y - radius * rng.uniform(0.0, 0.08)
    disc_r = radius * rng.uniform(0.13, 0.16)
    return Eye(cx, cy, radius, side, disc_x, disc_y, disc_r, fovea_x, fovea_y)


def lesion_sites(rng: np.random.Generator, eye: Eye, n: int, spread: float = 0.72) -> np.ndarray:
    """Up to n (x, y) points in the posterior pole, away from the optic disc and inside the fundus."""
    k = 3 * n + 6
    ang = rng.uniform(0, 2 * np.pi, k)
    rad = eye.radius * spread * np.sqrt(rng.uniform(0.02, 1, k))
    x, y = eye.fovea_x + rad * np.cos(ang), eye.fovea_y + rad * np.sin(ang)
    ok = np.hypot(x - eye.disc_x, y - eye.disc_y) > 1.6 * eye.disc_r
    ok &= np.hypot(x - eye.cx, y - eye.cy) < 0.9 * eye.radius
    ok &= (x > 0.03) & (x < 0.97) & (y > 0.03) & (y < 0.97)
    return np.stack([x[ok], y[ok]], axis=1)[:n]


def vessel_tree(rng: np.random.Generator, layer: Layer, eye: Eye, heading: float, turn: float, width: float):
    """Draw one vessel (random walk from the disc) with its branches and sub-branches into layer."""
    x0 = eye.disc_x + 0.2 * eye.disc_r * np.cos(heading)
    y0 = eye.disc_y + 0.2 * eye.disc_r * np.sin(heading)
    step = 0.05 * eye.radius
    xs, ys, hd = random_walk(rng, x0, y0, heading, 20, step, 0.05, turn)
    layer.tapered(xs, ys, width, 0.35 * width, min_px=0.7)
    for i in np.sort(rng.choice(np.arange(3, 17), 3, replace=False)):
        frac = 1 - 0.65 * i / 20
        sign = 1 if rng.random() < 0.5 else -1
        bx, by, bh = random_walk(rng, xs[i], ys[i], hd[i] + sign * rng.uniform(0.5, 1.0), 11, step, 0.12)
        layer.tapered(bx, by, 0.6 * width * frac, 0.25 * width, pieces=3, min_px=0.5)
        j = int(rng.integers(3, 8))
        cx, cy, _ = random_walk(rng, bx[j], by[j], bh[j] - sign * rng.uniform(0.5, 1.0), 6, step, 0.15)
        layer.tapered(cx, cy, 0.35 * width * frac, 0.2 * width, pieces=2, min_px=0.5)


def draw_vessels(rng: np.random.Generator, eye: Eye, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Alpha layers of the veins and the arteries: four arcades each, leaving the disc."""
    veins, arteries = Layer(size), Layer(size)
    s = eye.side
    # headings for a disc right of the fovea (s = +1), mirrored for s = -1; y points down
    arcades = [
        (-np.pi / 2 - 0.15, -0.07),
        (np.pi / 2 + 0.15, 0.07),
        (-np.pi / 2 + 0.4, 0.025),
        (np.pi / 2 - 0.4, -0.025),
    ]
    for heading, turn in arcades:
        for layer, offset, width in ((veins, 0.0, 0.013), (arteries, 0.18, 0.009)):
            h = heading + offset * np.sign(turn)
            if s < 0:
                h, t = np.pi - h, -turn
            else:
                t = turn
            vessel_tree(rng, layer, eye, h, t, width * rng.uniform(0.85, 1.15))
    return veins.alpha(), arteries.alpha()


def draw_tuft(rng: np.random.Generator, layer: Layer, eye: Eye) -> None:
    """A neovascular tuft (or its IRMA look-alike): fine tortuous loops near the optic disc."""
    ang = rng.uniform(0, 2 * np.pi)
    dist = eye.disc_r * rng.uniform(1.1, 2.2)
    x, y = eye.disc_x + dist * np.cos(ang), eye.disc_y + dist * np.sin(ang)
    for _ in range(7):
        sx, sy = x + rng.normal(0, 0.008), y + rng.normal(0, 0.008)
        xs, ys, _ = random_walk(rng, sx, sy, rng.uniform(0, 2 * np.pi), 8, 0.006, 0.9)
        layer.line(xs, ys, 0.004, min_px=0.8)


def draw_plan(rng: np.random.Generator, label: int) -> dict:
    """The first draws of ``generate``, all that the label decides, without rendering:
    the pixel-noise seed, then the lesion plan."""
    plan = {"noise_seed": int(rng.integers(2**63))}
    plan.update(sample_plan(rng, label))
    return plan


def generate(rng: np.random.Generator, label: int, size: int) -> Sample:
    """Render one fundus photo of DR grade ``label`` at size x size, with its lesion mask."""
    plan = draw_plan(rng, label)
    noise_rng = np.random.default_rng(plan["noise_seed"])  # pixel noise: the only size-dependent draws
    eye = sample_eye(rng)
    yy, xx = grid(size)

    # background: orange-red fundus with a colour cast, shading, texture, macula and optic disc
    base = np.array([0.80, 0.36, 0.14]) * rng.uniform(0.82, 1.18, 3) * rng.uniform(0.65, 1.1)
    r = np.hypot(xx - eye.cx, yy - eye.cy) / eye.radius
    shade = 1 - rng.uniform(0.25, 0.55) * np.clip(r, 0, 1) ** 2
    t = rng.uniform(0, 2 * np.pi)
    shade *= 1 + rng.uniform(0.1, 0.45) * ((xx - eye.cx) * np.cos(t) + (yy - eye.cy) * np.sin(t)) / eye.radius
    shade *= 1 + 0.05 * value_noise(rng, size, 12)
    d_fovea2 = ((xx - eye.fovea_x) ** 2 + (yy - eye.fovea_y) ** 2) / (0.2 * eye.radius) ** 2
    shade *= 1 - rng.uniform(0.2, 0.4) * np.exp(-0.5 * d_fovea2)
    img = (shade[..., None] * base).astype(np.float32)

    d_disc = np.hypot(xx - eye.disc_x, yy - eye.disc_y)
    disc_color = np.array([1.0, 0.75, 0.45]) * rng.uniform(0.8, 1.0)
    paint(img, 0.8 * smoothstep(eye.disc_r, 0.7 * eye.disc_r, d_disc), disc_color)
    paint(img, 0.5 * smoothstep(0.45 * eye.disc_r, 0.2 * eye.disc_r, d_disc), (1.0, 0.92, 0.75))

    veins, arteries = draw_vessels(rng, eye, size)
    img *= 1 - veins[..., None] * np.array([0.55, 0.72, 0.62], np.float32)
    img *= 1 - arteries[..., None] * np.array([0.3, 0.55, 0.5], np.float32)

    # lesions: one anti-aliased layer per kind; look-alikes are painted the same but kept out of the mask
    dots, fake_dots, blots, specks, fluffy, tufts, fake_tufts = (Layer(size) for _ in range(7))
    for x, y in lesion_sites(rng, eye, plan["microaneurysm"]):
        dots.disc(x, y, rng.uniform(0.005, 0.008), min_px=1.0)
    for x, y in lesion_sites(rng, eye, plan["lookalike_dot"]):
        fake_dots.disc(x, y, rng.uniform(0.005, 0.008), min_px=1.0)
    for x, y in lesion_sites(rng, eye, plan["haemorrhage"], spread=0.8):
        flame = rng.random() < 0.3
        aspect = rng.uniform(2.5, 4) if flame else rng.uniform(1, 1.5)
        blots.polygon(*blob(rng, x, y, rng.uniform(0.012, 0.03), 0.3, aspect, n=12))
    for x, y in lesion_sites(rng, eye, plan["exudate_cluster"], spread=0.5):
        k = int(rng.integers(3, 8))
        for dx, dy in rng.normal(0, 0.018, (k, 2)):
            specks.disc(x + dx, y + dy, rng.uniform(0.004, 0.008), min_px=1.0)
    for x, y in lesion_sites(rng, eye, plan["cotton_wool"], spread=0.75):
        fluffy.polygon(*blob(rng, x, y, rng.uniform(0.02, 0.035), 0.35, rng.uniform(1, 2)))
    for _ in range(plan["tuft"]):
        draw_tuft(rng, tufts, eye)
    for _ in range(plan["lookalike_tuft"]):
        draw_tuft(rng, fake_tufts, eye)

    a_dots, a_fake, a_blots, a_specks = dots.alpha(), fake_dots.alpha(), blots.alpha(), specks.alpha()
    a_fluffy, a_tufts, a_fake_tufts = fluffy.alpha(blur=0.006), tufts.alpha(), fake_tufts.alpha()
    dark_red = np.array([0.45, 0.22, 0.25], np.float32) * rng.uniform(0.85, 1.1)
    img *= 1 - 0.9 * np.maximum(a_dots, a_fake)[..., None] * (1 - dark_red)
    img *= 1 - 0.85 * a_blots[..., None] * (1 - dark_red)
    paint(img, 0.8 * a_fluffy, np.array([0.95, 0.88, 0.72]) * base.max() / 0.8)
    paint(img, 0.9 * a_specks, np.array([0.98, 0.88, 0.35]) * min(1.0, base.max() / 0.75 + 0.15))
    img *= 1 - 0.85 * np.maximum(a_tufts, a_fake_tufts)[..., None] * np.array([0.25, 0.75, 0.7], np.float32)

    # camera: round aperture, gamma, defocus, noise
    img *= smoothstep(1.0, 0.97, r)[..., None]
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    img = blur(img, rng.uniform(0.0, 0.005))
    img += noise_rng.normal(0, rng.uniform(0.006, 0.025), img.shape).astype(np.float32)

    inside = r < 0.98
    mask = (a_dots > 0.35) | (a_blots > 0.35) | (a_specks > 0.35) | (a_fluffy > 0.35) | (a_tufts > 0.25)
    return Sample(image=to_uint8(img), label=int(label), mask=mask & inside)


_SEVERE_DR = (pois(4, 3), pois(3.5, 3), stats.binom(2, 0.5, loc=1), pois(1.2))
# what an image shows of its plan (the Bayes ceiling's ``law.Law``): dots and tufts are drawn alike
LAW = Law(
    ("dots", "haemorrhages", "exudate_clusters", "cotton_wool_spots", "tufts"),
    lambda p: (
        p["microaneurysm"] + p["lookalike_dot"],
        p["haemorrhage"],
        p["exudate_cluster"],
        p["cotton_wool"],
        p["tuft"] + p["lookalike_tuft"],
    ),
    (
        (bern(0.12), fixed(), fixed(), fixed(), fixed()),
        (pois(1.5, 1), bern(0.15), fixed(), fixed(), fixed()),
        (pois(3, 2), pois(2), bern(0.4), bern(0.15), fixed()),
        (*_SEVERE_DR, bern(0.12)),
        (*_SEVERE_DR, bern(0.3, 1)),
    ),
)
