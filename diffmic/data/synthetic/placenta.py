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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ._draw import Layer, blob, grid, smoothstep, to_uint8, value_noise
from .law import Law, bern, fixed, pois
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


@dataclass
class Scan:
    """Geometry of the fan and of the placental band (normalised coordinates, y down)."""

    ax: float  # fan apex
    ay: float
    half: float  # half opening angle (radians)
    tilt: float
    r_near: float
    r_far: float
    y0: float  # chorionic plate at x = 0.5
    slope: float
    curv: float
    thick: float
    wave_amp: float  # chorionic plate undulation
    wave_freq: float
    wave_phase: float

    def chorion(self, x: np.ndarray) -> np.ndarray:
        """Depth of the chorionic plate (with its undulation) at x."""
        wave = np.sin(2 * np.pi * self.wave_freq * x + self.wave_phase)
        return self.smooth_chorion(x) + self.wave_amp * wave

    def smooth_chorion(self, x: np.ndarray) -> np.ndarray:
        """Depth of the chorionic plate without undulation."""
        return self.y0 + self.slope * (x - 0.5) + self.curv * (x - 0.5) ** 2

    def basal(self, x: np.ndarray) -> np.ndarray:
        """Depth of the basal plate at x."""
        return self.smooth_chorion(x) + self.thick * (1 + 0.08 * np.sin(5 * x + self.wave_phase))

    def polar(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(beam angle from the fan axis, distance from the apex)."""
        return np.arctan2(x - self.ax, y - self.ay) - self.tilt, np.hypot(x - self.ax, y - self.ay)

    def inside(self, x: np.ndarray, y: np.ndarray, margin: float = 0.03) -> np.ndarray:
        """Whether points lie inside the fan (and the image) with a margin."""
        theta, rho = self.polar(x, y)
        ok = (np.abs(theta) < self.half - margin / np.maximum(rho, 1e-3)) & (rho > self.r_near)
        return ok & (rho < self.r_far) & (x > margin) & (x < 1 - margin) & (y < 1 - margin)


def sample_scan(rng: np.random.Generator, grade: int) -> Scan:
    """Random fan and placenta geometry; the chorionic plate undulates from grade I on."""
    ay = -rng.uniform(0.04, 0.12)
    wavy = grade > 0 or rng.random() < 0.5
    amp = rng.uniform(0.004, 0.01) if wavy else 0.0
    return Scan(
        ax=0.5 + rng.normal(0, 0.02),
        ay=ay,
        half=rng.uniform(0.55, 0.68),
        tilt=rng.normal(0, 0.04),
        r_near=-ay + rng.uniform(0.03, 0.07),
        r_far=-ay + rng.uniform(0.95, 1.05),
        y0=rng.uniform(0.30, 0.42),
        slope=rng.normal(0, 0.15),
        curv=rng.normal(0, 0.3),
        thick=rng.uniform(0.20, 0.28),
        wave_amp=amp,
        wave_freq=rng.uniform(3, 7),
        wave_phase=rng.uniform(0, 2 * np.pi),
    )


def placenta_sites(rng: np.random.Generator, scan: Scan, n: int, lo: float, hi: float) -> np.ndarray:
    """Up to n (x, y) points inside the fan, between fractions lo and hi of the placental thickness."""
    k = 3 * n + 6
    x = rng.uniform(0.12, 0.88, k)
    f = rng.uniform(lo, hi, k)
    y = scan.chorion(x) + f * (scan.basal(x) - scan.chorion(x))
    ok = scan.inside(x, y)
    return np.stack([x[ok], y[ok]], axis=1)[:n]


def plate_line(rng: np.random.Generator, scan: Scan, x: float, reach: float, n: int = 8):
    """Points of a comma-like line from the chorionic plate at x down ``reach`` of the placenta."""
    t = np.linspace(0, 1, n)
    hook = rng.choice([-1, 1]) * rng.uniform(0.015, 0.04)
    xs = x + hook * t**2
    top, bottom = scan.chorion(np.array(x)), scan.basal(np.array(x))
    return xs, top + reach * t * (bottom - top)


def tissue_map(rng: np.random.Generator, scan: Scan, size: int) -> np.ndarray:
    """Echogenicity (before speckle) of wall, fluid, chorionic plate, placenta, myometrium and deep tissue."""
    yy, xx = grid(size)
    _, rho = scan.polar(xx, yy)
    depth = rho - scan.r_near
    echo = np.full((size, size), 0.008, np.float32)  # amniotic fluid
    wall = rng.uniform(0.08, 0.14)
    bands = sum(np.exp(-(((depth - p * wall) / 0.012) ** 2)) for p in rng.uniform(0.1, 0.9, 3))
    echo = np.where(depth < wall, 0.12 + 0.5 * bands, echo)
    c, b = scan.chorion(xx), scan.basal(xx)
    placenta = (0.16 + 0.03 * value_noise(rng, size, 8)) * smoothstep(c - 0.004, c + 0.006, yy)
    echo = np.where(yy > c - 0.01, np.maximum(echo, placenta), echo)
    myo_t = rng.uniform(0.04, 0.08)
    below = yy - b
    echo = np.where(below > 0, 0.06 + 0.015 * value_noise(rng, size, 6), echo)
    echo = np.where(below > myo_t, 0.16 + 0.05 * value_noise(rng, size, 5), echo)
    echo = np.maximum(echo, 0.22 * np.exp(-((below / 0.006) ** 2)))  # basal plate boundary
    echo = np.maximum(echo, rng.uniform(0.5, 0.8) * np.exp(-(((yy - c) / rng.uniform(0.004, 0.007)) ** 2)))
    return echo


def fetal_part(rng: np.random.Generator, scan: Scan, size: int) -> np.ndarray:
    """A bright curved arc in the fluid (a fetal limb or skull edge), as an alpha layer."""
    layer = Layer(size)
    x = rng.uniform(0.3, 0.7)
    top = scan.r_near + 0.15
    y_mid = (top + scan.chorion(np.array(x))) / 2
    t = np.linspace(-1, 1, 16)
    r = rng.uniform(0.12, 0.25)
    a = rng.uniform(0, 2 * np.pi)
    layer.line(x + r * np.cos(a + 1.1 * t), y_mid + 0.4 * r * np.sin(a + 1.1 * t), 0.012, min_px=1.0)
    return layer.alpha(blur=0.004)


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


def scanner_marks(rng: np.random.Generator, scan: Scan, size: int) -> np.ndarray:
    """Depth ticks beside the fan and a block of 'text' in the top-left corner."""
    marks = Layer(size)
    for y in np.arange(0.1, 0.96, 0.1):
        marks.disc(0.965, y, 0.003, min_px=0.7)
    for row in range(int(rng.integers(2, 5))):
        y = 0.03 + 0.03 * row
        marks.line(np.array([0.03, 0.03 + rng.uniform(0.06, 0.14)]), np.array([y, y]), 0.012, min_px=1.0)
    return 0.7 * marks.alpha()


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
