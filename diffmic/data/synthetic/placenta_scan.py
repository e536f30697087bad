"""The placenta task's scan: the fan's and the placental band's geometry (``Scan``, ``sample_scan``), where a
lesion can sit (``placenta_sites``, ``plate_line``), and the scene around the lesions: the tissue's
echogenicity (``tissue_map``), a fetal part in the fluid and the scanner's marks. The grading rule and the
rendering of the lesions are ``placenta.py``'s."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._draw import Layer, grid, smoothstep, value_noise


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


def scanner_marks(rng: np.random.Generator, scan: Scan, size: int) -> np.ndarray:
    """Depth ticks beside the fan and a block of 'text' in the top-left corner."""
    marks = Layer(size)
    for y in np.arange(0.1, 0.96, 0.1):
        marks.disc(0.965, y, 0.003, min_px=0.7)
    for row in range(int(rng.integers(2, 5))):
        y = 0.03 + 0.03 * row
        marks.line(np.array([0.03, 0.03 + rng.uniform(0.06, 0.14)]), np.array([y, y]), 0.012, min_px=1.0)
    return 0.7 * marks.alpha()
