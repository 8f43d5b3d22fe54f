"""SynthFaces: a procedural renderer of small face-like images with controlled attribute cues.

SynthFaces is a stand-in for the *structure* of real face datasets (FairFace's intersectional
groups, CelebA's correlated binary attributes, scenes for bias transfer). It is not a model of
real people: every attribute is a neutral visual factor (a colour palette, a hair-greyness and
wrinkle "age" level, a hair "style"), and every cue has a strength knob from invisible (0) to
obvious (1).

Three modes share one vectorised renderer:

* :func:`render_faces` -- ``palette`` (7 levels) x ``age`` (9 bins) x ``style`` (2) = 126
  intersectional groups with a controllable group-size imbalance.
* :func:`render_multiattribute` -- 12 binary attributes plus 4 binary identity categories with
  configurable attribute-identity correlations.
* :func:`render_scenes` / :func:`canonical_sets` -- a figure of one ``style`` next to one of K
  object icons, with a configurable object-style co-occurrence.

All functions return ``images`` as a ``torch.uint8`` tensor of shape ``(N, 3, H, W)`` and
``attributes`` as a :class:`pandas.DataFrame` of :class:`pandas.Categorical` columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairlib._validation import integer
from fairlib.data.loaders import AttributeDataset

__all__ = [
    "PALETTE_LEVELS",
    "AGE_BINS",
    "STYLE_LEVELS",
    "FACE_SCHEMA",
    "MULTI_ATTRIBUTES",
    "IDENTITY_ATTRIBUTES",
    "DEFAULT_MULTI_RATES",
    "DEFAULT_CORRELATIONS",
    "OBJECT_NAMES",
    "default_group_weights",
    "render_faces",
    "render_multiattribute",
    "render_scenes",
    "canonical_sets",
    "SynthFaces",
]

PALETTE_LEVELS: tuple[str, ...] = ("P1", "P2", "P3", "P4", "P5", "P6", "P7")
AGE_BINS: tuple[str, ...] = (
    "0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+",
)
STYLE_LEVELS: tuple[str, ...] = ("A", "B")
FACE_SCHEMA: dict[str, list[str]] = {
    "palette": list(PALETTE_LEVELS),
    "age": list(AGE_BINS),
    "style": list(STYLE_LEVELS),
}

#: FairFace's training-set age-bin counts (86,744 images); the default age marginal copies
#: their shape so that the quick profile reproduces the real dataset's skew.
FAIRFACE_AGE_COUNTS: tuple[int, ...] = (1792, 10408, 9103, 25598, 19250, 10744, 6228, 2779, 842)
#: Intersections made rare (weight x 0.1) by default, so that small groups exist to study.
RARE_INTERSECTIONS: tuple[tuple[str, str, str], ...] = (
    ("P6", "70+", "B"),
    ("P7", "0-2", "A"),
    ("P2", "60-69", "B"),
)
RARE_FACTOR = 0.1

#: Palette colours (RGB in [0, 1]): a luminance ramp with an alternating tint, so that the
#: levels differ in hue as well as brightness (lighting alone cannot map one onto the next).
_PALETTE_RGB = np.array(
    [
        [0.97, 0.86, 0.78],
        [0.93, 0.78, 0.58],
        [0.84, 0.66, 0.56],
        [0.74, 0.56, 0.38],
        [0.62, 0.44, 0.36],
        [0.50, 0.35, 0.22],
        [0.36, 0.25, 0.20],
    ],
    dtype=np.float32,
)
_HAIR_RGB = np.array(
    [[0.12, 0.09, 0.07], [0.30, 0.19, 0.10], [0.55, 0.38, 0.18], [0.78, 0.64, 0.36],
     [0.50, 0.20, 0.08], [0.05, 0.05, 0.06]],
    dtype=np.float32,
)
_GREY_HAIR = np.array([0.86, 0.86, 0.88], dtype=np.float32)

MULTI_ATTRIBUTES: tuple[str, ...] = (
    "glasses", "hat", "smile", "beard", "fringe", "earrings",
    "mustache", "blush", "mole", "headband", "necklace", "lipstick",
)
#: Identity-like categories with neutral, visual names. Their CelebA counterparts (for the
#: course's comparison tables): angular ~ Male, smooth ~ Young, wide ~ Chubby, light ~ Pale_Skin.
IDENTITY_ATTRIBUTES: tuple[str, ...] = ("angular", "smooth", "wide", "light")
#: Base rates P(attribute = 1), taken from the CelebA counterparts' frequencies.
DEFAULT_MULTI_RATES: dict[str, float] = {
    "glasses": 0.065, "hat": 0.05, "smile": 0.48, "beard": 0.17, "fringe": 0.15,
    "earrings": 0.19, "mustache": 0.04, "blush": 0.07, "mole": 0.10, "headband": 0.05,
    "necklace": 0.12, "lipstick": 0.47,
    "angular": 0.42, "smooth": 0.78, "wide": 0.06, "light": 0.04,
}
#: Default attribute-identity correlations (phi coefficients); each attribute is linked to at
#: most one identity so that the configured phi is exactly the population correlation.
DEFAULT_CORRELATIONS: dict[tuple[str, str], float] = {
    ("beard", "angular"): 0.5,
    ("lipstick", "angular"): -0.6,
    ("earrings", "angular"): -0.35,
    ("mustache", "angular"): 0.2,
    ("glasses", "smooth"): -0.2,
    ("blush", "light"): 0.15,
    ("smile", "wide"): 0.1,
}

OBJECT_NAMES: tuple[str, ...] = (
    "disc", "square", "diamond", "ring", "cross", "triangle", "bar", "x",
)

_MAX_SIZE = 128
_MIN_SIZE = 16
_CHUNK = 256  # images per rendering chunk: keeps the working set cache-sized


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_n(n: Any, name: str = "n") -> int:
    return integer(n, name, minimum=0)


def _check_size(size: Any) -> int:
    return integer(size, "size", minimum=_MIN_SIZE, maximum=_MAX_SIZE, meaning="(image side in pixels)")


def _check_seed(seed: Any) -> int:
    return integer(seed, "seed", minimum=0)


def _check_unit(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}") from None
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return v


def _check_strengths(
    strengths: Mapping[str, float] | None, allowed: Sequence[str], default: float = 1.0
) -> dict[str, float]:
    out = {k: default for k in allowed}
    if strengths is None:
        return out
    if not isinstance(strengths, Mapping):
        raise ValueError(
            f"strengths: expected a dict mapping attribute names to numbers in [0, 1], got "
            f"{type(strengths).__name__}"
        )
    for key, value in strengths.items():
        if key not in out:
            raise ValueError(
                f"strengths: unknown attribute {key!r}; choose from {', '.join(allowed)}"
            )
        out[key] = _check_unit(value, f"strengths[{key!r}]")
    return out


# --------------------------------------------------------------------------------------------
# group sizes


def default_group_weights() -> np.ndarray:
    """The default ``palette x age x style`` group weights.

    Palette and style are uniform; the age marginal follows FairFace's training set; the cells
    in :data:`RARE_INTERSECTIONS` are scaled by 0.1.

    Returns
    -------
    numpy.ndarray
        Shape ``(7, 9, 2)``, non-negative, summing to 1.
    """
    age = np.asarray(FAIRFACE_AGE_COUNTS, dtype=np.float64)
    w = np.ones((7, 9, 2)) * age[None, :, None]
    for p, a, s in RARE_INTERSECTIONS:
        w[PALETTE_LEVELS.index(p), AGE_BINS.index(a), STYLE_LEVELS.index(s)] *= RARE_FACTOR
    return w / w.sum()


def _allocate(n: int, weights: np.ndarray) -> np.ndarray:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainder).

    Deterministic, so a configured imbalance is reproduced exactly rather than only in
    expectation: ``counts[i]`` is ``floor(n * w_i)`` or one more.
    """
    w = weights.ravel() / weights.sum()
    exact = n * w
    counts = np.floor(exact).astype(np.int64)
    rest = n - counts.sum()
    if rest > 0:
        # stable sort so ties go to the earlier cell, which keeps the result seed-independent
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:rest]] += 1
    return counts.reshape(weights.shape)


def _check_group_weights(group_weights: Any) -> np.ndarray:
    if group_weights is None:
        return default_group_weights()
    if isinstance(group_weights, str) and group_weights == "uniform":
        return np.full((7, 9, 2), 1.0 / 126)
    if isinstance(group_weights, str):
        raise ValueError(f"group_weights: unknown name {group_weights!r}; pass 'uniform', None or an array of "
                         "shape (7, 9, 2)")
    w = np.asarray(group_weights, dtype=np.float64)
    if w.shape != (7, 9, 2):
        raise ValueError(
            "group_weights: expected an array of shape (7, 9, 2) (palette x age x style), "
            f"'uniform' or None, got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            "group_weights: expected finite non-negative weights with a positive sum"
        )
    return w / w.sum()


# --------------------------------------------------------------------------------------------
# the renderer
#
# Every image is described by per-image parameter arrays (length N); drawing is vectorised over
# a chunk of images and all pixels. Shapes live in a "head frame" (u, v) that is shifted,
# rotated and scaled per image, which is what keeps pixel-level linear separability low.


def _nuisance(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image nuisance parameters: pose, scale, lighting, background, clothing, hair."""
    f = np.float32
    p: dict[str, np.ndarray] = {}
    p["cx"] = rng.uniform(-0.12, 0.12, n).astype(f)
    p["cy"] = rng.uniform(-0.10, 0.14, n).astype(f)
    p["scale"] = rng.uniform(0.70, 0.95, n).astype(f)
    p["angle"] = rng.uniform(-0.25, 0.25, n).astype(f)
    p["bg0"] = rng.uniform(0.05, 0.95, (n, 3)).astype(f)
    p["bg1"] = rng.uniform(0.05, 0.95, (n, 3)).astype(f)
    p["bgdir"] = rng.uniform(0, 2 * np.pi, n).astype(f)
    p["light"] = rng.uniform(0.75, 1.15, n).astype(f)
    p["light_grad"] = rng.uniform(0.0, 0.35, n).astype(f)
    p["light_dir"] = rng.uniform(0, 2 * np.pi, n).astype(f)
    p["clothes"] = rng.uniform(0.05, 0.95, (n, 3)).astype(f)
    p["hair"] = _HAIR_RGB[rng.integers(0, len(_HAIR_RGB), n)]
    p["skin_jitter"] = rng.normal(0, 0.025, (n, 3)).astype(f)
    p["acc_color"] = rng.uniform(0.05, 0.95, (n, 3)).astype(f)
    p["frame_color"] = rng.uniform(0.0, 0.35, (n, 3)).astype(f)
    return p


def _defaults(n: int) -> dict[str, np.ndarray]:
    """Neutral values for every drawable feature (all optional layers off)."""
    z = np.zeros(n, np.float32)
    return {
        "figure": np.ones(n, np.float32),
        "skin": np.tile(np.float32([0.8, 0.65, 0.5]), (n, 1)),
        "age": np.full(n, 0.45, np.float32),
        "style": np.full(n, 0.5, np.float32),
        "width": np.ones(n, np.float32),
        "angular": z.copy(),
        "object": np.full(n, -1, np.int64),
        **{k: z.copy() for k in MULTI_ATTRIBUTES},
    }


def _sub(a: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    return a if idx is None else a[idx]


def _col(a: np.ndarray) -> np.ndarray:
    return a[:, None, None]


class _Canvas:
    """One chunk of images being drawn, in float32, with the per-image head frame."""

    def __init__(self, p: dict[str, np.ndarray], size: int):
        n = len(p["cx"])
        self.n = n
        self.p = p
        xs = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1).astype(np.float32)
        self.X = xs[None, None, :]
        self.Y = xs[None, :, None]
        t = _col(np.cos(p["bgdir"])) * self.X + _col(np.sin(p["bgdir"])) * self.Y
        np.clip(0.5 + 0.5 * t, 0, 1, out=t)
        bg0, bg1 = p["bg0"], p["bg1"]
        self.img = bg0[:, :, None, None] + t[:, None] * (bg1 - bg0)[:, :, None, None]
        self.img = self.img.astype(np.float32, copy=False)
        c, s = np.cos(p["angle"]), np.sin(p["angle"])
        dx = self.X - _col(p["cx"])
        dy = self.Y - _col(p["cy"])
        inv = 1.0 / p["scale"]
        self.U = (dx * _col(c * inv) + dy * _col(s * inv)).astype(np.float32)
        self.V = (dy * _col(c * inv) - dx * _col(s * inv)).astype(np.float32)
        # pixels per head-frame unit: sets the anti-aliasing width of every edge
        self.px = (p["scale"] * size / 2).astype(np.float32)

    def _crop(self, box: tuple[float, float, float, float], sel) -> tuple[slice, slice]:
        """Pixel rows/columns covering head-frame box ``(u0, u1, v0, v1)`` in every image."""
        p = self.p
        cx, cy, sc, an = (_sub(p[k], sel) for k in ("cx", "cy", "scale", "angle"))
        c, s = np.cos(an), np.sin(an)
        us = np.array([box[0], box[1], box[0], box[1]], np.float32)[:, None]
        vs = np.array([box[2], box[2], box[3], box[3]], np.float32)[:, None]
        x = cx + sc * (us * c - vs * s)
        y = cy + sc * (us * s + vs * c)
        size = self.X.shape[-1]

        def span(lo, hi):
            a = int(np.floor((lo + 1) / 2 * size - 2))
            b = int(np.ceil((hi + 1) / 2 * size + 2))
            return slice(max(a, 0), max(min(b, size), 0))

        return span(y.min(), y.max()), span(x.min(), x.max())

    def paint(self, active: np.ndarray, mask_fn, color: np.ndarray,
              alpha: np.ndarray | None = None, box: tuple[float, float, float, float] | None = None):
        """Blend ``color`` (n, 3) into the images where ``mask_fn`` is on.

        ``mask_fn(u, v, idx)`` returns (k, h, w) coverage in [0, 1] for the selected images,
        evaluated on the head-frame coordinates it is given. ``box`` bounds the layer in the
        head frame so that it is computed and blended on that crop only (the renderer's main
        saving); layers present in few images are drawn on that subset only.
        """
        idx = np.flatnonzero(active)
        if idx.size == 0:
            return
        full = idx.size > 0.6 * self.n
        sel = None if full else idx
        u, v = _sub(self.U, sel), _sub(self.V, sel)
        if box is not None:
            r, c = self._crop(box, sel)
            if r.start >= r.stop or c.start >= c.stop:
                return
            u, v = u[:, r, c], v[:, r, c]
            m = mask_fn(u, v, sel)
        else:
            m = mask_fn(u, v, sel)
            rows = np.flatnonzero(m.max(axis=(0, 2)) > 0)
            cols = np.flatnonzero(m.max(axis=(0, 1)) > 0)
            if rows.size == 0:
                return
            r = slice(rows[0], rows[-1] + 1)
            c = slice(cols[0], cols[-1] + 1)
            m = m[:, r, c]
        a = active.astype(np.float32) if alpha is None else active * alpha.astype(np.float32)
        m = m * _col(_sub(a, sel))
        col = _sub(color, sel).astype(np.float32)[:, :, None, None]
        m = m[:, None]
        target = self.img if full else self.img[idx]
        view = target[:, :, r, c]
        delta = col - view
        delta *= m
        view += delta
        if not full:
            self.img[idx] = target

    def finish(self) -> np.ndarray:
        p = self.p
        lx = _col(np.cos(p["light_dir"]) * p["light_grad"])
        ly = _col(np.sin(p["light_dir"]) * p["light_grad"])
        shade = _col(p["light"]) * (1 + lx * self.X + ly * self.Y)
        self.img *= shade[:, None]
        np.clip(self.img, 0, 1, out=self.img)
        return (self.img * 255 + 0.5).astype(np.uint8)


def _ellipse(u, v, px, cx, cy, ax, ay):
    """Anti-aliased filled ellipse; the (1 - q) r / 2 term approximates the signed distance."""
    q = ((u - cx) / ax) ** 2 + ((v - cy) / ay) ** 2
    r = np.minimum(ax, ay) if np.ndim(ax) or np.ndim(ay) else min(ax, ay)
    return np.clip(0.5 + (1 - q) * (0.5 * r) * px, 0, 1)


def _band(d, half_width, px):
    """Coverage of a stripe ``|d| < half_width`` (d in head units)."""
    return np.clip(0.5 + (half_width - np.abs(d)) * px, 0, 1)


def _step(d, px):
    """Coverage of the half-plane ``d > 0``."""
    return np.clip(0.5 + d * px, 0, 1)


def _draw_chunk(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    cv = _Canvas(p, size)
    n = cv.n
    fig = p["figure"] > 0
    px_all = _col(cv.px)

    def pxs(sel):
        return _sub(px_all, sel)

    def par(key, sel):
        return _col(_sub(p[key], sel))

    # head half-axes: "wide" widens the face
    head_ax = (0.40 * p["width"]).astype(np.float32)
    head_ay = np.float32(0.54)
    # widest head is 0.40 * 1.22 ("wide") and the antialiased edge adds a little
    HEAD_BOX = (-0.50, 0.50, -0.56, 0.56)
    p["_head_ax"] = head_ax
    age = p["age"]
    young = np.clip(1 - age * 4, 0, 1)  # the youngest bins get a rounder, larger-eyed face
    p["_eye"] = (1 + 0.35 * young).astype(np.float32)
    hair = p["hair"] + (_GREY_HAIR - p["hair"]) * np.clip(age - 0.2, 0, 1)[:, None] / 0.8
    skin = np.clip(p["skin"] + p["skin_jitter"], 0, 1).astype(np.float32)

    # body and neck
    cv.paint(fig, lambda u, v, s: _ellipse(u, v, pxs(s), 0.0, 1.30, 0.95, 0.60), p["clothes"],
             box=(-0.97, 0.97, 0.68, 1.92))
    # hair behind the head: its length is the "style" cue (short cap ... shoulder length)
    hair_len = (-0.10 + 0.95 * p["style"]).astype(np.float32)

    def hair_back(u, v, s):
        ax = par("_head_ax", s) + 0.09 + 0.06 * par("style", s)
        m = _ellipse(u, v, pxs(s), 0.0, 0.05, ax, 0.66)
        return m * _step(_col(_sub(hair_len, s)) - v, pxs(s))

    cv.paint(fig, hair_back, hair, box=(-0.66, 0.66, -0.63, 0.73))
    cv.paint(fig, lambda u, v, s: _band(u, 0.13, pxs(s)) * _step(v - 0.3, pxs(s))
             * _step(0.95 - v, pxs(s)), skin * 0.85, box=(-0.16, 0.16, 0.28, 0.97))

    # head: an ellipse, squared off below the eyes for "angular"
    def head(u, v, s):
        ax = par("_head_ax", s)
        qe = (u / ax) ** 2 + (v / head_ay) ** 2
        ang = _sub(p["angular"], s)
        if np.any(ang > 0):
            qb = np.maximum(np.abs(u) / ax, np.abs(v) / head_ay) ** 2
            qe = qe + _col(ang) * (v > 0.05) * (qb - qe)
        return np.clip(0.5 + (1 - qe) * (0.5 * ax) * pxs(s), 0, 1)

    cv.paint(fig, head, skin, box=HEAD_BOX)

    # age: forehead wrinkles whose contrast grows over the older bins
    wrinkle = np.clip((age - 0.45) / 0.55, 0, 1) * 0.55

    def wrinkles(u, v, s):
        lines = 0.5 + 0.5 * np.cos((v + 0.2) * 70.0)
        return lines * _band(v + 0.2, 0.075, pxs(s)) * _band(u, 0.2, pxs(s))

    cv.paint(fig & (wrinkle > 0.01), wrinkles, skin * 0.55, wrinkle, box=(-0.22, 0.22, -0.3, -0.1))
    cv.paint(fig & (p["blush"] > 0), lambda u, v, s: _ellipse(np.abs(u), v, pxs(s), 0.21, 0.15,
             0.09, 0.06), np.tile(np.float32([0.92, 0.42, 0.45]), (n, 1)), 0.25 * p["blush"],
             box=(-0.32, 0.32, 0.07, 0.23))
    cv.paint(fig & (p["mole"] > 0), lambda u, v, s: _ellipse(u, v, pxs(s), 0.13, 0.17, 0.035,
             0.035), np.tile(np.float32([0.25, 0.14, 0.10]), (n, 1)), p["mole"],
             box=(0.08, 0.18, 0.12, 0.22))
    cv.paint(fig & (p["beard"] > 0), lambda u, v, s: head(u, v, s) * _step(v - 0.17, pxs(s)),
             hair, 0.9 * p["beard"], box=(HEAD_BOX[0], HEAD_BOX[1], 0.15, HEAD_BOX[3]))
    cv.paint(fig & (p["mustache"] > 0), lambda u, v, s: _ellipse(u, v, pxs(s), 0.0, 0.235,
             0.13, 0.032), hair, p["mustache"], box=(-0.15, 0.15, 0.19, 0.28))

    # mouth: the smile bends it up at the corners and opens it
    lip = np.float32([0.45, 0.20, 0.20]) + (
        np.float32([0.80, 0.08, 0.22]) - np.float32([0.45, 0.20, 0.20])
    ) * p["lipstick"][:, None]

    def mouth(u, v, s):
        sm = par("smile", s)
        centre = 0.31 + sm * (0.035 - 1.8 * u * u)
        return _band(v - centre, 0.022 + 0.012 * sm, pxs(s)) * _band(u, 0.13, pxs(s))

    cv.paint(fig, mouth, lip, box=(-0.15, 0.15, 0.24, 0.40))
    eye_col = np.tile(np.float32([0.08, 0.08, 0.10]), (n, 1))
    cv.paint(fig, lambda u, v, s: _ellipse(np.abs(u), v, pxs(s), 0.165, -0.02,
             0.065 * par("_eye", s), 0.042 * par("_eye", s)), eye_col,
             box=(-0.28, 0.28, -0.09, 0.05))
    cv.paint(fig, lambda u, v, s: _ellipse(np.abs(u), v, pxs(s), 0.165, -0.13, 0.085,
             0.018 + 0.012 * par("angular", s)), hair * 0.7, box=(-0.27, 0.27, -0.17, -0.09))

    def glasses(u, v, s):
        au = np.abs(u)
        q = ((au - 0.165) / 0.11) ** 2 + ((v + 0.02) / 0.085) ** 2
        ring = np.clip(0.5 + (0.35 - np.abs(q - 1)) * 0.04 * pxs(s), 0, 1)
        bridge = _band(au, 0.06, pxs(s)) * _band(v + 0.03, 0.012, pxs(s))
        return np.maximum(ring, bridge)

    cv.paint(fig & (p["glasses"] > 0), glasses, p["frame_color"], p["glasses"],
             box=(-0.32, 0.32, -0.14, 0.10))

    # hair on the head: a hairline, lowered by "fringe"
    hairline = (-0.30 + 0.18 * p["fringe"]).astype(np.float32)
    cv.paint(fig, lambda u, v, s: head(u, v, s) * _step(_col(_sub(hairline, s)) - v - 0.6 * u * u,
             pxs(s)), hair, box=(HEAD_BOX[0], HEAD_BOX[1], HEAD_BOX[2], -0.08))
    cv.paint(fig & (p["headband"] > 0), lambda u, v, s: _band(v + 0.34, 0.035, pxs(s))
             * _band(u, par("_head_ax", s) * 0.92, pxs(s)), p["acc_color"], p["headband"],
             box=(-0.5, 0.5, -0.39, -0.29))

    def hat(u, v, s):
        crown = _ellipse(u, v, pxs(s), 0.0, -0.62, 0.42, 0.26)
        brim = _band(v + 0.44, 0.04, pxs(s)) * _band(u, 0.58, pxs(s))
        return np.maximum(crown, brim)

    cv.paint(fig & (p["hat"] > 0), hat, p["acc_color"][:, ::-1].copy(), p["hat"],
             box=(-0.6, 0.6, -0.9, -0.39))
    gold = np.tile(np.float32([0.95, 0.80, 0.25]), (n, 1))
    cv.paint(fig & (p["earrings"] > 0), lambda u, v, s: _ellipse(np.abs(u), v, pxs(s),
             par("_head_ax", s) + 0.01, 0.20, 0.035, 0.035), gold, p["earrings"],
             box=(-0.56, 0.56, 0.15, 0.25))

    def necklace(u, v, s):
        q = (u / 0.24) ** 2 + ((v - 0.52) / 0.30) ** 2
        return np.clip(0.5 + (0.15 - np.abs(q - 1)) * 0.1 * pxs(s), 0, 1) * _step(v - 0.62, pxs(s))

    cv.paint(fig & (p["necklace"] > 0), necklace, gold * 0.9, p["necklace"],
             box=(-0.27, 0.27, 0.6, 0.86))

    # scene objects: icons in their own frame (ox, oy, radius), drawn on their subset only
    obj = p["object"]
    for k in range(len(OBJECT_NAMES)):
        sel_k = obj == k
        if not sel_k.any():
            continue
        idx = np.flatnonzero(sel_k)

        def icon(u, v, s, k=k, idx=idx):
            ox, oy, r = (_col(p[key][idx]) for key in ("ox", "oy", "orad"))
            x = (cv.X - ox) / r
            y = (cv.Y - oy) / r
            pr = r * _col(np.full(len(idx), size / 2, np.float32))
            ax_, ay_ = np.abs(x), np.abs(y)
            if k == 0:
                d = (1 - (x * x + y * y)) * 0.5
            elif k == 1:
                d = 0.8 - np.maximum(ax_, ay_)
            elif k == 2:
                d = (1 - (ax_ + ay_)) * 0.7
            elif k == 3:
                d = 0.22 - np.abs(np.sqrt(x * x + y * y) - 0.72)
            elif k == 4:
                d = np.minimum(0.28 - np.minimum(ax_, ay_), 0.95 - np.maximum(ax_, ay_))
            elif k == 5:
                d = np.minimum(y + 0.75, (0.8 - y) * 0.5 - ax_ * 0.9)
            elif k == 6:
                d = np.minimum(0.3 - ay_, 0.95 - ax_)
            else:
                a2, b2 = np.abs(x + y) * 0.7071, np.abs(x - y) * 0.7071
                d = np.minimum(0.24 - np.minimum(a2, b2), 0.95 - np.maximum(a2, b2))
            return np.clip(0.5 + d * pr, 0, 1)

        # icons are in image coordinates, so bypass the head frame (u, v are unused)
        cv.paint(sel_k, icon, p["ocolor"])
    return cv.finish()


def _draw(p: dict[str, np.ndarray], size: int) -> torch.Tensor:
    n = len(p["cx"])
    out = np.empty((n, 3, size, size), np.uint8)
    for start in range(0, n, _CHUNK):
        part = {k: v[start:start + _CHUNK] for k, v in p.items()}
        out[start:start + _CHUNK] = _draw_chunk(part, size)
    return torch.from_numpy(out)


def _categorical(codes: np.ndarray, categories: Sequence[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=list(categories))


# --------------------------------------------------------------------------------------------
# public renderers


def render_faces(
    n: int,
    *,
    size: int = 64,
    strengths: Mapping[str, float] | None = None,
    group_weights: Any = None,
    seed: int = 0,
) -> tuple[torch.Tensor, pd.DataFrame]:
    """Render faces with intersectional ``palette x age x style`` labels (FairFace-like).

    Parameters
    ----------
    n
        Number of images.
    size
        Image side in pixels, 16 to 128.
    strengths
        Cue strength per attribute (``"palette"``, ``"age"``, ``"style"``), each in [0, 1];
        0 makes the attribute invisible (its rendered value is independent of the label),
        1 renders the label's own level. Missing attributes default to 1.
    group_weights
        Relative group sizes, an array of shape ``(7, 9, 2)`` indexed
        ``[palette, age, style]``; ``"uniform"``; or ``None`` for
        :func:`default_group_weights` (FairFace-like age skew plus rare intersections).
        Group counts are allocated exactly (largest remainder), not sampled.
    seed
        Seed; the same arguments always give the same images and attributes.

    Returns
    -------
    images : torch.Tensor
        ``uint8``, shape ``(n, 3, size, size)``.
    attributes : pandas.DataFrame
        ``n`` rows; Categorical columns ``palette`` (P1..P7), ``age`` (9 bins), ``style``
        (A, B).
    """
    n = _check_n(n)
    size = _check_size(size)
    seed = _check_seed(seed)
    st = _check_strengths(strengths, list(FACE_SCHEMA))
    w = _check_group_weights(group_weights)
    rng = np.random.default_rng([seed, 1])
    counts = _allocate(n, w).ravel()
    cells = np.repeat(np.arange(counts.size), counts)
    cells = cells[rng.permutation(n)]
    pal, age, sty = np.unravel_index(cells, (7, 9, 2))

    p = _defaults(n)
    p.update(_nuisance(n, rng))
    s = st["palette"]
    decoy = rng.integers(0, 7, n)
    p["skin"] = (s * _PALETTE_RGB[pal] + (1 - s) * _PALETTE_RGB[decoy]).astype(np.float32)
    s = st["age"]
    decoy = rng.integers(0, 9, n)
    p["age"] = ((s * age + (1 - s) * decoy) / 8).astype(np.float32)
    s = st["style"]
    decoy = rng.integers(0, 2, n)
    p["style"] = (s * sty + (1 - s) * decoy).astype(np.float32)
    # accessories as nuisance: independent of every label
    for key, rate in (("glasses", 0.15), ("hat", 0.12), ("earrings", 0.15)):
        p[key] = (rng.random(n) < rate).astype(np.float32)
    images = _draw(p, size)
    attrs = pd.DataFrame({
        "palette": _categorical(pal, PALETTE_LEVELS),
        "age": _categorical(age, AGE_BINS),
        "style": _categorical(sty, STYLE_LEVELS),
    })
    return images, attrs


def _conditional_rates(
    rates: dict[str, float], correlations: Mapping[tuple[str, str], float]
) -> dict[str, tuple[str, float, float]]:
    """For each linked attribute: (identity, P(a=1 | id=1), P(a=1 | id=0)) giving phi exactly."""
    out: dict[str, tuple[str, float, float]] = {}
    for key, phi in correlations.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(
                "correlations: keys must be (attribute, identity) pairs, e.g. "
                f"('beard', 'angular'); got {key!r}"
            )
        a, i = key
        if a not in MULTI_ATTRIBUTES:
            raise ValueError(
                f"correlations: {a!r} is not an attribute; choose from {', '.join(MULTI_ATTRIBUTES)}"
            )
        if i not in IDENTITY_ATTRIBUTES:
            raise ValueError(
                f"correlations: {i!r} is not an identity; choose from "
                f"{', '.join(IDENTITY_ATTRIBUTES)}"
            )
        if a in out:
            raise ValueError(
                f"correlations: attribute {a!r} is linked to two identities ({out[a][0]!r} and "
                f"{i!r}); link each attribute to at most one identity"
            )
        phi = float(phi)
        pa, pi = rates[a], rates[i]
        cov = phi * np.sqrt(pa * (1 - pa) * pi * (1 - pi))
        p1, p0 = pa + cov / pi, pa - cov / (1 - pi)
        if not (0 <= p1 <= 1 and 0 <= p0 <= 1):
            # the feasible phi range for these two base rates
            lo_hi = []
            for sign in (-1, 1):
                c = np.sqrt(pa * (1 - pa) * pi * (1 - pi))
                lim = min(
                    ((1 - pa) if sign > 0 else pa) * pi / c,
                    (pa if sign > 0 else (1 - pa)) * (1 - pi) / c,
                )
                lo_hi.append(sign * lim)
            raise ValueError(
                f"correlations[{key!r}]: phi={phi} is impossible with base rates "
                f"P({a})={pa} and P({i})={pi}; choose phi in [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}] "
                "or change rates"
            )
        out[a] = (i, p1, p0)
    return out


def render_multiattribute(
    n: int,
    *,
    size: int = 64,
    rates: Mapping[str, float] | None = None,
    correlations: Mapping[tuple[str, str], float] | None = None,
    strengths: Mapping[str, float] | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, pd.DataFrame]:
    """Render faces with 12 binary attributes and 4 binary identities (CelebA-like).

    Identities (:data:`IDENTITY_ATTRIBUTES`) are drawn independently with their base rates;
    each attribute is drawn given at most one linked identity so that its phi coefficient
    with that identity equals the configured value. Some attributes are hard to see by design
    (``mole`` is about one pixel at 64x64, ``blush`` is low-contrast, ``earrings`` and
    ``necklace`` are small).

    Parameters
    ----------
    n, size, seed
        As in :func:`render_faces`.
    rates
        Base rates ``P(x = 1)`` overriding :data:`DEFAULT_MULTI_RATES` (values in (0, 1)).
    correlations
        ``{(attribute, identity): phi}``; ``None`` uses :data:`DEFAULT_CORRELATIONS` and ``{}``
        makes every attribute independent. A phi outside the range allowed by the two base
        rates raises ValueError with that range.
    strengths
        Visibility (opacity, or cue mixing for identities) per attribute or identity, in
        [0, 1]; default 1.

    Returns
    -------
    images : torch.Tensor
        ``uint8``, shape ``(n, 3, size, size)``.
    attributes : pandas.DataFrame
        Categorical columns, categories ``[0, 1]``: the 4 identities then the 12 attributes.
    """
    n = _check_n(n)
    size = _check_size(size)
    seed = _check_seed(seed)
    names = list(IDENTITY_ATTRIBUTES) + list(MULTI_ATTRIBUTES)
    r = dict(DEFAULT_MULTI_RATES)
    if rates is not None:
        if not isinstance(rates, Mapping):
            raise ValueError("rates: expected a dict mapping attribute names to probabilities")
        for k, v in rates.items():
            if k not in r:
                raise ValueError(f"rates: unknown attribute {k!r}; choose from {', '.join(names)}")
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"rates[{k!r}]: expected a probability in (0, 1), got {v!r}") from None
            if not 0 < fv < 1:
                raise ValueError(f"rates[{k!r}]: expected a probability in (0, 1), got {v!r}")
            r[k] = fv
    if correlations is None:
        correlations = DEFAULT_CORRELATIONS
    if not isinstance(correlations, Mapping):
        raise ValueError("correlations: expected a dict {(attribute, identity): phi}")
    links = _conditional_rates(r, correlations)
    st = _check_strengths(strengths, names)

    rng = np.random.default_rng([seed, 2])
    labels: dict[str, np.ndarray] = {}
    for i in IDENTITY_ATTRIBUTES:
        labels[i] = (rng.random(n) < r[i]).astype(np.int64)
    for a in MULTI_ATTRIBUTES:
        u = rng.random(n)
        if a in links:
            ident, p1, p0 = links[a]
            prob = np.where(labels[ident] == 1, p1, p0)
        else:
            prob = np.full(n, r[a])
        labels[a] = (u < prob).astype(np.int64)

    p = _defaults(n)
    p.update(_nuisance(n, rng))
    # palette is nuisance here; the "light" identity pulls the skin towards the lightest level
    skin = _PALETTE_RGB[rng.integers(0, 7, n)]
    lt = labels["light"] * st["light"] + (1 - st["light"]) * (rng.random(n) < r["light"])
    p["skin"] = (skin + (_PALETTE_RGB[0] * 1.03 - skin) * 0.85 * lt[:, None]).astype(np.float32)
    sm = labels["smooth"] * st["smooth"] + (1 - st["smooth"]) * (rng.random(n) < r["smooth"])
    young_age = rng.uniform(0.15, 0.40, n)
    old_age = rng.uniform(0.55, 1.0, n)
    p["age"] = (sm * young_age + (1 - sm) * old_age).astype(np.float32)
    ang = labels["angular"] * st["angular"] + (1 - st["angular"]) * (rng.random(n) < r["angular"])
    p["angular"] = (0.8 * ang).astype(np.float32)
    wd = labels["wide"] * st["wide"] + (1 - st["wide"]) * (rng.random(n) < r["wide"])
    p["width"] = (1 + 0.22 * wd).astype(np.float32)
    p["style"] = rng.random(n).astype(np.float32)  # hair length is nuisance here
    for a in MULTI_ATTRIBUTES:
        p[a] = (labels[a] * st[a]).astype(np.float32)
    images = _draw(p, size)
    attrs = pd.DataFrame({k: _categorical(labels[k], [0, 1]) for k in names})
    return images, attrs


def _check_objects(n_objects: Any) -> int:
    return integer(n_objects, "n_objects", minimum=2, maximum=len(OBJECT_NAMES))


def _scene_params(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Nuisance for scenes: a smaller figure on the left, an icon on the right."""
    p = _defaults(n)
    p.update(_nuisance(n, rng))
    p["cx"] = rng.uniform(-0.50, -0.38, n).astype(np.float32)
    p["cy"] = rng.uniform(-0.05, 0.12, n).astype(np.float32)
    p["scale"] = rng.uniform(0.48, 0.56, n).astype(np.float32)
    p["skin"] = _PALETTE_RGB[rng.integers(0, 7, n)]
    p["age"] = rng.uniform(0.2, 0.6, n).astype(np.float32)
    p["ox"] = rng.uniform(0.45, 0.62, n).astype(np.float32)
    p["oy"] = rng.uniform(-0.5, 0.5, n).astype(np.float32)
    p["orad"] = rng.uniform(0.18, 0.26, n).astype(np.float32)
    p["ocolor"] = rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32)
    return p


def _scene_frame(obj: np.ndarray, sty: np.ndarray, n_objects: int) -> pd.DataFrame:
    """``object`` and ``style`` columns; -1 (absent) becomes a missing value."""
    return pd.DataFrame({
        "object": pd.Categorical.from_codes(obj, categories=list(OBJECT_NAMES[:n_objects])),
        "style": pd.Categorical.from_codes(sty, categories=list(STYLE_LEVELS)),
    })


def render_scenes(
    n: int,
    *,
    n_objects: int = 4,
    cooccurrence: Any = 0.0,
    size: int = 64,
    style_strength: float = 1.0,
    seed: int = 0,
) -> tuple[torch.Tensor, pd.DataFrame]:
    """Render scenes of one figure (``style`` A or B) beside one of ``n_objects`` icons.

    Parameters
    ----------
    n, size, seed
        As in :func:`render_faces`.
    n_objects
        Number of object classes K (2 to 8); objects are uniform.
    cooccurrence
        Either a number ``b`` in [0, 1]: object ``k`` appears with its preferred style
        (``k % 2``: A for even, B for odd) with probability ``(1 + b) / 2`` (0 is
        independent, 1 fully confounded); or an array of shape ``(K, 2)`` of
        ``P(style | object)`` rows, each summing to 1.
    style_strength
        Cue strength of the figure's style, in [0, 1].

    Returns
    -------
    images : torch.Tensor
        ``uint8``, shape ``(n, 3, size, size)``.
    attributes : pandas.DataFrame
        Categorical columns ``object`` (K icon names) and ``style`` (A, B).
    """
    n = _check_n(n)
    size = _check_size(size)
    seed = _check_seed(seed)
    k = _check_objects(n_objects)
    s = _check_unit(style_strength, "style_strength")
    if np.ndim(cooccurrence) == 0:
        b = _check_unit(cooccurrence, "cooccurrence")
        pref = np.arange(k) % 2
        table = np.where(pref[:, None] == np.arange(2)[None, :], (1 + b) / 2, (1 - b) / 2)
    else:
        table = np.asarray(cooccurrence, dtype=np.float64)
        if table.shape != (k, 2) or np.any(table < 0) or not np.allclose(table.sum(1), 1):
            raise ValueError(
                f"cooccurrence: expected a number in [0, 1] or a ({k}, 2) array of "
                "P(style | object) rows summing to 1"
            )
    rng = np.random.default_rng([seed, 3])
    obj = rng.integers(0, k, n)
    sty = (rng.random(n) < table[obj, 1]).astype(np.int64)
    p = _scene_params(n, rng)
    p["object"] = obj
    decoy = rng.integers(0, 2, n)
    p["style"] = (s * sty + (1 - s) * decoy).astype(np.float32)
    return _draw(p, size), _scene_frame(obj, sty, k)


def canonical_sets(
    n: int, *, n_objects: int = 4, size: int = 64, seed: int = 0
) -> dict[str, tuple[torch.Tensor, pd.DataFrame]]:
    """Matched image sets for measuring bias transfer in scene mode.

    All sets share, index by index, the same background, lighting, figure pose and object
    placement, so they differ only in what is drawn: image ``i`` of ``object_with_A`` and of
    ``object_with_B`` differ only in the figure's style.

    Parameters
    ----------
    n
        Images per set; object ``i % n_objects`` is used for image ``i`` (balanced objects).
    n_objects, size, seed
        As in :func:`render_scenes`.

    Returns
    -------
    dict
        ``"object_alone"`` (icon, no figure), ``"style_alone"`` (figure, no icon; style
        ``i % 2``), ``"object_with_A"`` and ``"object_with_B"`` (icon plus a figure of that
        style), each ``(images, attributes)`` with images ``uint8 (n, 3, size, size)``.
        Absent factors are missing values in the attribute columns.
    """
    n = _check_n(n)
    size = _check_size(size)
    seed = _check_seed(seed)
    k = _check_objects(n_objects)
    rng = np.random.default_rng([seed, 4])
    base = _scene_params(n, rng)
    obj = np.arange(n) % k
    none = np.full(n, -1)
    out: dict[str, tuple[torch.Tensor, pd.DataFrame]] = {}
    variants = {
        "object_alone": (obj, none, 0.0),
        "style_alone": (none, np.arange(n) % 2, 1.0),
        "object_with_A": (obj, np.zeros(n, np.int64), 1.0),
        "object_with_B": (obj, np.ones(n, np.int64), 1.0),
    }
    for name, (o, s, fig) in variants.items():
        p = dict(base)
        p["object"] = np.asarray(o, np.int64)
        p["figure"] = np.full(n, fig, np.float32)
        p["style"] = np.clip(s, 0, 1).astype(np.float32)
        out[name] = (_draw(p, size), _scene_frame(np.asarray(o), np.asarray(s), k))
    return out


# --------------------------------------------------------------------------------------------
# dataset


class SynthFaces(AttributeDataset):
    """A rendered SynthFaces set: an :class:`~fairlib.data.AttributeDataset` held in memory.

    Parameters
    ----------
    n
        Number of images.
    mode
        ``"faces"`` (:func:`render_faces`), ``"multi"`` (:func:`render_multiattribute`) or
        ``"scenes"`` (:func:`render_scenes`).
    seed
        Seed passed to the renderer.
    split
        The split's name (``load_dataset`` renders each split from its own seed).
    transform
        Optional callable applied to each ``uint8 (3, H, W)`` image; without one, images are
        returned as ``float32`` in [0, 1].
    **options
        Passed to the renderer (``size``, ``strengths``, ``group_weights``, ...).

    Attributes
    ----------
    images : torch.Tensor
        ``uint8``, shape ``(n, 3, H, W)``.
    attributes : pandas.DataFrame
        Categorical columns (see the renderer).
    schema : dict
        Attribute name -> list of categories.
    """

    MODES = ("faces", "multi", "scenes")

    def __init__(self, n: int = 10_000, *, mode: str = "faces", seed: int = 0, split: str = "train",
                 transform=None, **options: Any):
        render = {"faces": render_faces, "multi": render_multiattribute,
                  "scenes": render_scenes}.get(mode)
        if render is None:
            raise ValueError(f"mode: unknown mode {mode!r}; choose one of {', '.join(self.MODES)}")
        try:
            images, attributes = render(n, seed=seed, **options)
        except TypeError as err:
            raise ValueError(f"options: {err} (see the docstring of {render.__name__})") from None
        super().__init__(attributes, images=images, name="synthfaces", split=split, transform=transform)
        self.mode = mode
