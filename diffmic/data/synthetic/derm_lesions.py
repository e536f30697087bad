"""The dermoscopy task's lesions, painted onto the skin (the rules they follow: ``derm.py``'s docstring):
the outline (``Shape``), the textures (pigment ``network``, keratosis ``ridges``), and one renderer per kind
of lesion: ``melanocytic`` (nevus to melanoma by atypia), ``bcc`` (with its ``vessel_trees``) and ``bkl``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._draw import Layer, blob, grid, paint, random_walk, smoothstep, value_noise

PALETTE = {
    "light_brown": (0.66, 0.46, 0.31),
    "dark_brown": (0.38, 0.23, 0.15),
    "black": (0.12, 0.08, 0.07),
    "blue_grey": (0.42, 0.48, 0.60),
    "red": (0.78, 0.36, 0.36),
    "white": (0.90, 0.86, 0.84),
}


@dataclass
class Shape:
    """A lesion outline: an ellipse perturbed by a few random radial harmonics."""

    cx: float
    cy: float
    radius: float
    aspect: float
    rot: float
    amps: np.ndarray
    phases: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator, irregular: float) -> Shape:
        """A random outline whose border wobbles by about ``irregular`` (relative)."""
        k = np.arange(1, 7)
        amps = irregular * rng.uniform(0.3, 1.0, 6) / np.sqrt(k)
        amps[0] *= 0.5  # the first harmonic only shifts the blob
        return cls(
            cx=0.5 + rng.normal(0, 0.05),
            cy=0.5 + rng.normal(0, 0.05),
            radius=rng.uniform(0.16, 0.30),
            aspect=rng.uniform(1.0, 1.4),
            rot=rng.uniform(0, np.pi),
            amps=amps,
            phases=rng.uniform(0, 2 * np.pi, 6),
        )

    def border(self, theta: np.ndarray) -> np.ndarray:
        """Border distance (in the lesion's stretched frame) at angle theta."""
        k = np.arange(1, 7)
        wobble = (self.amps * np.cos(np.multiply.outer(theta, k) + self.phases)).sum(-1)
        return self.radius * (1 + wobble)

    def depth(self, size: int) -> np.ndarray:
        """Per pixel: 1 - distance / border (1 at the centre, 0 on the border, < 0 outside)."""
        yy, xx = grid(size)
        c, s = np.cos(self.rot), np.sin(self.rot)
        u, v = (xx - self.cx) * c + (yy - self.cy) * s, -(xx - self.cx) * s + (yy - self.cy) * c
        u = u / self.aspect
        return 1 - np.hypot(u, v) / self.border(np.arctan2(v, u))

    def point(self, theta: float, scale: float) -> tuple[float, float]:
        """Image coordinates of the point at angle theta and ``scale`` times the border distance."""
        r = scale * float(self.border(np.array(theta)))
        u, v = self.aspect * r * np.cos(theta), r * np.sin(theta)
        c, s = np.cos(self.rot), np.sin(self.rot)
        return self.cx + u * c - v * s, self.cy + u * s + v * c


def network(rng: np.random.Generator, size: int, period: float, warp: float, thickness: float) -> np.ndarray:
    """A pigment network in [0, 1]: honeycomb lines around round holes (sum of three plane waves).

    ``warp`` distorts the holes (in periods), ``thickness`` from about -0.4 (thin lines) to 0.5 (thick)."""
    yy, xx = grid(size)
    x = xx + warp * period * value_noise(rng, size, 7)
    y = yy + warp * period * value_noise(rng, size, 7)
    t = rng.uniform(0, 2 * np.pi / 3) + np.arange(3) * 2 * np.pi / 3
    k = 2 * np.pi / period
    waves = sum(np.cos(k * (x * np.cos(a) + y * np.sin(a))) for a in t)
    th = thickness + 0.4 * warp * value_noise(rng, size, 9)
    return 1 - smoothstep(th - 0.5, th + 0.5, waves)


def ridges(rng: np.random.Generator, size: int, period: float, warp: float) -> np.ndarray:
    """Brain-like fissures in [0, 1]: strongly warped parallel grooves."""
    yy, xx = grid(size)
    t = rng.uniform(0, np.pi)
    u = (xx * np.cos(t) - yy * np.sin(t)) / period + warp * value_noise(rng, size, 7)
    return np.exp(-((np.sin(np.pi * u) / 0.3) ** 2))


def points_inside(
    rng: np.random.Generator, shape: Shape, n: int, lo: float, hi: float
) -> list[tuple[float, float]]:
    """n random points between ``lo`` and ``hi`` times the border distance from the lesion centre."""
    thetas = rng.uniform(0, 2 * np.pi, n)
    scales = np.sqrt(rng.uniform(lo**2, hi**2, n))
    return [shape.point(t, s) for t, s in zip(thetas, scales, strict=True)]


def melanocytic(rng: np.random.Generator, img: np.ndarray, size: int, s: float) -> tuple[np.ndarray, Layer]:
    """Paint a nevus-to-melanoma lesion of atypia s; returns its region alpha and its streak layer."""
    shape = Shape.sample(rng, 0.03 + 0.2 * s * rng.uniform(0.6, 1.4))
    d = shape.depth(size)
    edge = 0.25 - 0.17 * s
    region = smoothstep(0, edge, d)
    light = np.array(PALETTE["light_brown"]) * rng.uniform(0.85, 1.15)
    paint(img, 0.9 * region, light)
    # colours: symmetric darker centre for low s, asymmetric patches of several colours for high s
    paint(img, (0.6 - 0.4 * s) * region * smoothstep(0.2, 0.9, d), PALETTE["dark_brown"])
    n_colours = int(np.clip(1 + round(4 * s + rng.normal(0, 0.6)), 1, 5))
    extra = ["dark_brown", "black", *rng.permutation(["blue_grey", "red", "white"])]
    for name in extra[: n_colours - 1]:
        patch = smoothstep(0.6, 1.2, value_noise(rng, size, 5) + rng.normal(0, 0.3))
        paint(img, 0.75 * region * patch * smoothstep(0.05, 0.25, d), PALETTE[str(name)])
    # pigment network
    if rng.random() < 0.85:
        net = network(rng, size, rng.uniform(0.035, 0.05), 0.2 + 0.7 * s, -0.35 + 0.6 * s)
        if s < 0.5:  # regular network thinning out towards the border
            fade = smoothstep(0.0, 0.5, d)
        else:  # atypical network: broken into patches, ending abruptly at the border
            fade = smoothstep(0.0, 0.06, d) * smoothstep(-0.6, 0.2, value_noise(rng, size, 6))
        line_color = PALETTE["dark_brown"] if s < 0.6 else PALETTE["black"]
        paint(img, (0.35 + 0.4 * s) * net * region * fade, line_color)
    # dots and globules
    dots = Layer(size)
    n_dots = rng.poisson(2 + 10 * s)
    lo, hi = (0.0, 0.5) if s < 0.5 else (0.4, 1.0)
    for x, y in points_inside(rng, shape, n_dots, lo, hi):
        dots.disc(x, y, rng.uniform(0.006, 0.01 + 0.008 * s), min_px=1.0)
    paint(img, 0.85 * dots.alpha(), PALETTE["dark_brown"] if s < 0.5 else PALETTE["black"])
    # streaks bunched in one sector of the border, with bulbous tips (pseudopods)
    streaks = Layer(size)
    sector = rng.uniform(0, 2 * np.pi)
    for _ in range(rng.poisson(14 * max(0.0, s - 0.45))):
        theta = sector + rng.normal(0, 0.45)
        x0, y0 = shape.point(theta, 0.85)
        x1, y1 = shape.point(theta, rng.uniform(1.08, 1.25))
        streaks.line(np.array([x0, x1]), np.array([y0, y1]), 0.006, min_px=0.9)
        streaks.disc(x1, y1, 0.007, min_px=1.0)
    paint(img, 0.85 * streaks.alpha(), PALETTE["dark_brown"])
    # blue-white veil and regression
    if rng.random() < 1.6 * max(0.0, s - 0.45):
        veil = Layer(size)
        x, y = points_inside(rng, shape, 1, 0.0, 0.5)[0]
        veil.polygon(*blob(rng, x, y, shape.radius * rng.uniform(0.35, 0.55), 0.3, rng.uniform(1, 1.6)))
        tex = 1 + 0.15 * value_noise(rng, size, 20)
        paint(img, 0.7 * region * veil.alpha(blur=0.01), np.array([0.55, 0.62, 0.75]) * tex[..., None])
    if rng.random() < 0.6 * max(0.0, s - 0.35):
        scar = Layer(size)
        x, y = points_inside(rng, shape, 1, 0.2, 0.6)[0]
        scar.polygon(*blob(rng, x, y, shape.radius * rng.uniform(0.25, 0.4), 0.35))
        pepper = Layer(size)
        for px, py in rng.normal(0, shape.radius * 0.18, (12, 2)) + (x, y):
            pepper.disc(px, py, 0.004, min_px=0.6)
        paint(img, 0.7 * region * scar.alpha(blur=0.008), PALETTE["white"])
        paint(img, 0.6 * region * scar.alpha() * pepper.alpha(), PALETTE["blue_grey"])
    return region, streaks


def vessel_trees(rng: np.random.Generator, shape: Shape, layer: Layer, n: int) -> None:
    """Arborizing vessels: red trees entering from the lesion border and branching inwards."""
    for _ in range(n):
        theta = rng.uniform(0, 2 * np.pi)
        x, y = shape.point(theta, rng.uniform(0.6, 0.9))
        heading = np.arctan2(shape.cy - y, shape.cx - x) + rng.normal(0, 0.5)
        xs, ys, hd = random_walk(rng, x, y, heading, 10, shape.radius * 0.08, 0.25)
        layer.tapered(xs, ys, 0.007, 0.003, pieces=3, min_px=0.7)
        for i in rng.choice(np.arange(2, 9), 3, replace=False):
            turn = rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
            bx, by, _ = random_walk(rng, xs[i], ys[i], hd[i] + turn, 5, shape.radius * 0.06, 0.35)
            layer.tapered(bx, by, 0.004, 0.002, pieces=2, min_px=0.6)


def bcc(rng: np.random.Generator, img: np.ndarray, size: int, pigmented: bool) -> np.ndarray:
    """Paint a basal cell carcinoma (or its pigmented variant); returns its region alpha."""
    shape = Shape.sample(rng, rng.uniform(0.05, 0.12))
    d = shape.depth(size)
    region = smoothstep(0, 0.15, d)
    base = (0.58, 0.40, 0.30) if pigmented else (0.94, 0.70, 0.70)
    paint(img, (0.7 if pigmented else 0.55) * region, np.array(base) * rng.uniform(0.9, 1.05))
    paint(img, 0.3 * region * smoothstep(0.5, 1.2, value_noise(rng, size, 6)), PALETTE["white"])
    nests = Layer(size)
    n_nests = int(rng.integers(4, 9)) if pigmented else rng.poisson(1.5)
    for x, y in points_inside(rng, shape, n_nests, 0.1, 0.85):
        nests.polygon(*blob(rng, x, y, rng.uniform(0.012, 0.028), 0.25, rng.uniform(1.3, 2.2)))
    paint(img, 0.8 * region * nests.alpha(blur=0.003), PALETTE["blue_grey"])
    if pigmented:
        dots = Layer(size)
        for x, y in points_inside(rng, shape, int(rng.integers(3, 9)), 0.2, 0.95):
            dots.disc(x, y, rng.uniform(0.005, 0.009), min_px=1.0)
        paint(img, 0.85 * dots.alpha(), PALETTE["black"])
    if rng.random() < 0.3:
        crust = Layer(size)
        x, y = points_inside(rng, shape, 1, 0.0, 0.5)[0]
        crust.polygon(*blob(rng, x, y, shape.radius * rng.uniform(0.15, 0.3), 0.4))
        paint(img, 0.85 * crust.alpha(blur=0.004), (0.42, 0.14, 0.10))
    vessels = Layer(size)
    vessel_trees(rng, shape, vessels, int(rng.random() < 0.5) if pigmented else 2 + rng.poisson(1.5))
    paint(img, 0.9 * region * vessels.alpha(), (0.78, 0.10, 0.16))
    return region


def bkl(rng: np.random.Generator, img: np.ndarray, size: int, reticulated: bool) -> np.ndarray:
    """Paint a seborrhoeic keratosis (or a flat reticulated one); returns its region alpha."""
    shape = Shape.sample(rng, rng.uniform(0.04, 0.12))
    d = shape.depth(size)
    region = smoothstep(0, 0.12 if reticulated else 0.03, d)
    tan = np.array([0.62, 0.45, 0.30]) * rng.uniform(0.75, 1.1)
    waxy = 1 + 0.08 * value_noise(rng, size, 30)[..., None]
    paint(img, 0.9 * region, tan * waxy)
    if reticulated:
        net = network(rng, size, rng.uniform(0.035, 0.05), 0.2, -0.3)
        paint(img, 0.4 * net * region * smoothstep(0.0, 0.5, d), PALETTE["dark_brown"])
        return region
    if rng.random() < 0.7:
        paint(img, 0.5 * region * ridges(rng, size, rng.uniform(0.05, 0.08), 1.6), tan * 0.55)
    cysts, plugs = Layer(size), Layer(size)
    for x, y in points_inside(rng, shape, 1 + rng.poisson(4), 0.0, 0.9):
        cysts.disc(x, y, rng.uniform(0.008, 0.015), min_px=1.0)
    for x, y in points_inside(rng, shape, rng.poisson(3), 0.0, 0.9):
        plugs.disc(x, y, rng.uniform(0.007, 0.013), min_px=1.0)
    paint(img, 0.9 * region * cysts.alpha(blur=0.002), (0.97, 0.95, 0.86))
    paint(img, 0.85 * region * plugs.alpha(), (0.22, 0.14, 0.10))
    return region
