"""Small vectorised drawing helpers shared by the synthetic image generators.

All scene geometry is given in *normalised* coordinates (x right, y down, both in [0, 1]) and
lengths as fractions of the image side, so one random scene renders identically at any size.
Shapes are drawn by PIL on a supersampled canvas and box-filtered down, which anti-aliases
thin lines and tiny dots. Colours are float RGB in [0, 1] until ``to_uint8``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter


def supersampling(size: int) -> int:
    """Supersampling factor of the PIL layers: 4 for small images, 2 from 256 px up."""
    return int(min(4, max(2, 512 // size)))


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (y, x) coordinates of the pixel centres, each (size, size) float32, read-only."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(c, c, indexing="ij")
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


class Layer:
    """An anti-aliased alpha layer: draw shapes in normalised coordinates, read back floats in [0, 1]."""

    def __init__(self, size: int):
        self.size = size
        self.ss = supersampling(size)
        self.scale = size * self.ss
        self.image = Image.new("L", (self.scale, self.scale), 0)
        self.draw = ImageDraw.Draw(self.image)
        self.empty = True

    def disc(self, x: float, y: float, r: float, min_px: float = 1.0, value: int = 255) -> None:
        """Filled circle of radius r (fraction of the side), never smaller than min_px output pixels."""
        rp = max(r * self.size, min_px) * self.ss
        cx, cy = x * self.scale, y * self.scale
        self.draw.ellipse((cx - rp, cy - rp, cx + rp, cy + rp), fill=value)
        self.empty = False

    def polygon(self, xs: np.ndarray, ys: np.ndarray, value: int = 255) -> None:
        """Filled polygon through the normalised points."""
        pts = np.stack([xs, ys], axis=1) * self.scale
        self.draw.polygon([tuple(p) for p in pts.tolist()], fill=value)
        self.empty = False

    def ring(
        self, xs: np.ndarray, ys: np.ndarray, width: float, min_px: float = 1.0, value: int = 255
    ) -> None:
        """Closed outline through the normalised points."""
        self.line(np.append(xs, xs[:2]), np.append(ys, ys[:2]), width, min_px, value)

    def line(
        self, xs: np.ndarray, ys: np.ndarray, width: float, min_px: float = 0.5, value: int = 255
    ) -> None:
        """Polyline of the given width (fraction of the side), at least min_px output pixels wide."""
        w = max(width * self.size, min_px) * self.ss
        pts = np.stack([xs, ys], axis=1) * self.scale
        self.draw.line([tuple(p) for p in pts.tolist()], fill=value, width=max(1, round(w)), joint="curve")
        self.empty = False

    def tapered(self, xs: np.ndarray, ys: np.ndarray, w0: float, w1: float, pieces: int = 4, **kw) -> None:
        """Polyline whose width goes from w0 to w1, drawn as a few constant-width pieces."""
        n = len(xs)
        cuts = np.linspace(0, n - 1, pieces + 1).round().astype(int)
        for i in range(pieces):
            a, b = cuts[i], cuts[i + 1] + 1
            if b - a >= 2:
                self.line(xs[a:b], ys[a:b], w0 + (w1 - w0) * (i + 0.5) / pieces, **kw)

    def alpha(self, blur: float = 0.0) -> np.ndarray:
        """The layer as float32 (size, size) in [0, 1]; blur is a Gaussian sigma as a fraction of the side."""
        if self.empty:
            return np.zeros((self.size, self.size), np.float32)
        a = np.asarray(self.image.reduce(self.ss), dtype=np.float32) * (1 / 255)
        if blur > 0:
            a = gaussian_filter(a, blur * self.size)
        return a


def blob(
    rng: np.random.Generator,
    x: float,
    y: float,
    r: float,
    irregular: float = 0.2,
    aspect: float = 1.0,
    angle: float | None = None,
    n: int = 14,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of an irregular closed blob (radius r, radial jitter ``irregular``, elongation ``aspect``)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = r * (1 + irregular * rng.uniform(-1, 1, n))
    rad = 0.5 * rad + 0.25 * (np.roll(rad, 1) + np.roll(rad, -1))  # smooth the jitter a little
    angle = rng.uniform(0, np.pi) if angle is None else angle
    px, py = rad * np.cos(t) * np.sqrt(aspect), rad * np.sin(t) / np.sqrt(aspect)
    c, s = np.cos(angle), np.sin(angle)
    return x + c * px - s * py, y + s * px + c * py


def random_walk(
    rng: np.random.Generator,
    x: float,
    y: float,
    angle: float,
    steps: int,
    step: float,
    wiggle: float,
    turn: float = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth random path: (xs, ys, headings) of steps + 1 points, turning by ``turn`` per step."""
    heading = angle + np.cumsum(turn + wiggle * rng.standard_normal(steps))
    heading = np.concatenate([[angle], heading])
    xs = x + np.concatenate([[0.0], np.cumsum(step * np.cos(heading[1:]))])
    ys = y + np.concatenate([[0.0], np.cumsum(step * np.sin(heading[1:]))])
    return xs, ys, heading


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise (size, size) float32 of about unit std: a random cells x cells grid, bicubic-upsampled."""
    coarse = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    img = Image.fromarray(coarse)  # float32 → mode "F"
    # crop a margin so the borders are not clamped, then resize to the target size
    box = (1.0, 1.0, cells + 2.0, cells + 2.0)
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC, box=box), dtype=np.float32)


def paint(img: np.ndarray, alpha: np.ndarray, color) -> None:
    """Alpha-blend ``color`` (an RGB triple or an (H, W, 3) array) into img, in place."""
    a = alpha[..., None]
    img += a * (np.asarray(color, dtype=np.float32) - img)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at e0 to 1 at e1."""
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an (H, W, 3) or (H, W) image; sigma is a fraction of the side."""
    if sigma <= 0:
        return img
    s = sigma * img.shape[0]
    return gaussian_filter(img, (s, s, 0) if img.ndim == 3 else s)


def vignette(size: int, strength: float, cx: float = 0.5, cy: float = 0.5) -> np.ndarray:
    """Radial darkening factor (size, size): 1 at (cx, cy), 1 - strength at distance 0.7."""
    yy, xx = grid(size)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / 0.49
    return (1 - strength * np.clip(r2, 0, 1.5)).astype(np.float32)


def gradient(size: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A linear illumination ramp (size, size) of mean 1 in a random direction."""
    yy, xx = grid(size)
    t = rng.uniform(0, 2 * np.pi)
    return (1 + strength * ((xx - 0.5) * np.cos(t) + (yy - 0.5) * np.sin(t))).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] → uint8, rounding and clipping."""
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean mask (inside pixels with an outside 4-neighbour)."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner
