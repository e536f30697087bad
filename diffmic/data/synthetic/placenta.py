"""Synthetic B-mode ultrasound of the placenta graded for maturity (Grannum grades 0-III, ordinal).

Scene (every grade): a grey-scale sector (fan) scan from an apex above the image, with speckle
(lateral-elongated Rayleigh noise), log compression, depth attenuation, uneven gain, and a few
scanner marks (depth ticks, a text block). From the probe down: bright bands of the abdominal wall,
anechoic amniotic fluid (w.p. 0.3 with a bright fetal-part arc, not a lesion), the chorionic plate (a
bright thin line, undulating in grades I-III and w.p. 0.5 in grade 0), the placenta as a
granular mid-grey band (thickness 20-28 % of the side), the basal plate, the darker myometrium and
deeper tissue. Fan angle, depth, band position, tilt, curvature, gain and speckle size are random.

Lesions (all bright echoes inside the placenta; each is in the mask):

* calcification focus: a small echogenic dot, radius 0.5-0.9 % of the side (at least 1 px);
* basal-plate dash: a bright dash 3-6 % long lying along the basal plate;
* indentation: a comma-like bright line from the chorionic plate 30-60 % of the way into the placenta;
* septum: an indentation that reaches the basal plate;
* cotyledon ring: a thin, slightly irregular bright ring (septal ring) spanning most of the placenta
  from chorionic to basal plate, around a darker centre;
* echogenic blob: a coarse calcification, radius 1.2-2 %, casting an acoustic shadow (a dark band
  along the beam below it; the shadow is not in the mask).

Grading rule, per image (Poisson(m) has mean m; "w.p." = with probability):

* Grade 0: no lesion; the chorionic plate undulates faintly w.p. 0.5. Distractor (not in the mask):
  w.p. 0.12 one bright dot drawn exactly like a focus.
* Grade I: foci = 1 + Poisson(2.5); dashes = 1 w.p. 0.15; indentations = 1 w.p. 0.1.
* Grade II: foci = 2 + Poisson(3); dashes = Poisson(2); indentations = Poisson(1);
  septa = 1 w.p. 0.15; echogenic blobs = 1 w.p. 0.12.
* Grade III: foci = 3 + Poisson(3); dashes = 1 + Poisson(2.5); septa = Poisson(1.2);
  rings = Poisson(0.8); echogenic blobs = Poisson(1); indentations = Poisson(1).

Adjacent grades overlap (with the look-alike dots and the speckle), so even the best possible lesion
reader is right on only 91.1 % of the images (exact, ``ceiling.py``).

Here: the plan, the lesions drawn, the scanner's rendering and the ``LAW``; the scan's geometry and the
tissue around the lesions are ``placenta_scan.py``'s.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ._draw import Layer, blob, grid, smoothstep, to_uint8, value_noise
from .law import Law, bern, fixed, pois
from .placenta_scan import fetal_part, placenta_sites, plate_line, sample_scan, scanner_marks, tissue_map
from .sample import Sample

DESCRIPTION = (
    "Placental maturity on B-mode ultrasound (Grannum grades 0-III): echogenic calcification foci "
    "(grade I), basal-plate dashes and chorionic indentations (grade II), septa and rings reaching the "
    "basal plate with acoustic shadowing (grade III)."
)
LESIONS = ("focus", "dash", "indentation", "septum", "ring", "blob")


def sample_plan(rng: np.random.Generator, grade: int) -> dict[str, int]:
    """How many lesions of each kind (and look-alike dots) an image of this grade shows."""
    plan = dict.fromkeys((*LESIONS, "lookalike_focus"), 0)
    if grade == 0:
        plan["lookalike_focus"] = int(rng.random() < 0.12)
    elif grade == 1:
        plan["focus"] = 1 + rng.poisson(2.5)
        plan["dash"] = int(rng.random() < 0.15)
        plan["indentation"] = int(rng.random() < 0.1)
    elif grade == 2:
        plan["focus"] = 2 + rng.poisson(3)
        plan["dash"] = rng.poisson(2)
        plan["indentation"] = rng.poisson(1)
        plan["septum"] = int(rng.random() < 0.15)
        plan["blob"] = int(rng.random() < 0.12)
    elif grade == 3:
        plan["focus"] = 3 + rng.poisson(3)
        plan["dash"] = 1 + rng.poisson(2.5)
        plan["septum"] = rng.poisson(1.2)
        plan["ring"] = rng.poisson(0.8)
        plan["blob"] = rng.poisson(1.0)
        plan["indentation"] = rng.poisson(1)
    else:
        raise ValueError(f"placenta grade must be 0..3, got {grade}")
    return {k: int(v) for k, v in plan.items()}


def draw_plan(rng: np.random.Generator, label: int) -> dict:
    """The first draws of ``generate``, all that the label decides, without rendering:
    the speckle seed, the lesion plan and the scan geometry (its chorionic plate
    undulates in every grade but 0)."""
    plan = {"noise_seed": int(rng.integers(2**63))}
    plan.update(sample_plan(rng, label))
    plan["scan"] = sample_scan(rng, label)
    return plan


def generate(rng: np.random.Generator, label: int, size: int) -> Sample:
    """Render one placenta ultrasound of Grannum grade ``label`` at size x size, with its lesion mask."""
    plan = draw_plan(rng, label)
    noise_rng = np.random.default_rng(plan["noise_seed"])  # speckle: the only size-dependent draws
    scan = plan["scan"]
    yy, xx = grid(size)
    echo = tissue_map(rng, scan, size)
    if rng.random() < 0.3:
        echo = np.maximum(echo, 0.5 * fetal_part(rng, scan, size))

    # lesions, one layer per kind; the look-alike dots share the look but not the mask
    foci, fake, dashes, lines, rings, blobs = (Layer(size) for _ in range(6))
    for x, y in placenta_sites(rng, scan, plan["focus"], 0.1, 0.9):
        foci.disc(x, y, rng.uniform(0.005, 0.009), min_px=1.0)
    for x, y in placenta_sites(rng, scan, plan["lookalike_focus"], 0.1, 0.9):
        fake.disc(x, y, rng.uniform(0.005, 0.009), min_px=1.0)
    for x, _ in placenta_sites(rng, scan, plan["dash"], 0.9, 1.0):
        half = rng.uniform(0.015, 0.03)
        xs = np.array([x - half, x, x + half])
        dashes.line(xs, scan.basal(xs) - 0.006, 0.007, min_px=1.0)
    for kind, reach in (("indentation", (0.3, 0.6)), ("septum", (1.0, 1.0))):
        for x, _ in placenta_sites(rng, scan, plan[kind], 0.5, 0.5):
            lines.tapered(*plate_line(rng, scan, x, rng.uniform(*reach)), 0.009, 0.005, pieces=2, min_px=1.0)
    hollows = Layer(size)
    for x, y in placenta_sites(rng, scan, plan["ring"], 0.55, 0.55):
        r = 0.45 * float(scan.basal(np.array(x)) - scan.chorion(np.array(x)))
        xs, ys = blob(rng, x, y, r, 0.15, rng.uniform(1.0, 1.5), angle=0.0, n=18)
        rings.ring(xs, ys, 0.005, min_px=1.0)
        hollows.polygon(x + 0.8 * (xs - x), y + 0.8 * (ys - y))
    casters = placenta_sites(rng, scan, plan["blob"], 0.3, 0.95)
    for x, y in casters:
        blobs.disc(x, y, rng.uniform(0.012, 0.02), min_px=1.5)

    a_foci, a_fake, a_dashes, a_lines = foci.alpha(), fake.alpha(), dashes.alpha(), lines.alpha()
    a_rings, a_blobs = 0.85 * rings.alpha(), blobs.alpha(blur=0.003)
    echo *= 1 - 0.55 * hollows.alpha(blur=0.01)
    bright = np.maximum.reduce([a_foci, a_fake, a_dashes, a_lines, a_rings, a_blobs])
    echo = np.maximum(echo, rng.uniform(0.7, 1.0) * bright)

    # acoustic shadows along the beam below each echogenic blob
    theta, rho = scan.polar(xx, yy)
    for x, y in casters:
        t_c, r_c = scan.polar(np.array(x), np.array(y))
        width = 0.02 / max(float(r_c), 0.1)
        echo *= 1 - 0.7 * np.exp(-(((theta - t_c) / width) ** 2)) * smoothstep(r_c + 0.01, r_c + 0.04, rho)

    # scanner: attenuation and gain, speckle, log compression, fan mask, marks
    gain = rng.uniform(0.7, 1.3) * np.exp(-rng.uniform(0.2, 0.8) * (rho - scan.r_near))
    gain *= 1 + 0.15 * value_noise(rng, size, 3)
    sig = size / 128
    z = noise_rng.standard_normal((2, size, size)).astype(np.float32)
    speckle = np.hypot(*(gaussian_filter(zi, (0.6 * sig, 1.4 * sig)) for zi in z))
    speckle /= speckle.mean()
    speckle **= 1 - 0.6 * bright  # specular reflectors (the calcifications) are less speckled
    comp = rng.uniform(15, 35)
    img = np.log1p(comp * echo * gain * speckle) / np.log1p(comp)
    fan = smoothstep(0, 0.006, scan.half - np.abs(theta)) * smoothstep(scan.r_near, scan.r_near + 0.005, rho)
    fan *= smoothstep(scan.r_far, scan.r_far - 0.005, rho)
    img *= fan
    img = np.maximum(img, scanner_marks(rng, scan, size))
    img = np.clip(img, 0, 1)

    mask = (a_foci > 0.35) | (a_dashes > 0.35) | (a_lines > 0.35) | (a_rings > 0.35) | (a_blobs > 0.35)
    tint = np.array([1.0, 1.0, 1.0]) if rng.random() < 0.8 else np.array([1.0, 0.94, 0.82])
    return Sample(image=to_uint8(img[..., None] * tint), label=int(label), mask=mask & (fan > 0.5))


# what an image shows of its plan (the Bayes ceiling's ``law.Law``): foci are drawn like their look-alikes
LAW = Law(
    ("foci", "dashes", "indentations", "septa", "rings", "blobs", "undulating_plate"),
    lambda p: (
        p["focus"] + p["lookalike_focus"],
        p["dash"],
        p["indentation"],
        p["septum"],
        p["ring"],
        p["blob"],
        int(p["scan"].wave_amp > 0),
    ),
    (
        (bern(0.12), fixed(), fixed(), fixed(), fixed(), fixed(), bern(0.5)),
        (pois(2.5, 1), bern(0.15), bern(0.1), fixed(), fixed(), fixed(), fixed(1)),
        (pois(3, 2), pois(2), pois(1), bern(0.15), fixed(), bern(0.12), fixed(1)),
        (pois(3, 3), pois(2.5, 1), pois(1), pois(1.2), pois(0.8), pois(1), fixed(1)),
    ),
)
