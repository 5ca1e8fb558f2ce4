"""Draws the bundled example: a mountain lake at dusk, and the mask of its water.

Run ``python workflows/assets/draw_example.py`` to regenerate the three files
beside this script (deterministic: fixed seeds, numpy and Pillow only):
``lake.png`` (the picture), ``lake_mask.png`` (white = water) and
``t2c_lake_masked.png`` (the picture with the water cleared in its alpha channel,
which is how ComfyUI's mask editor stores a mask, for LoadImage) and
``t2c_painting.png`` (the same scene as a coarse "oil painting", for the
painting-animation workflow).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

SIZE = 512
HERE = os.path.dirname(os.path.abspath(__file__))


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``[size, size]`` smooth noise in [0, 1] (bilinear over a random grid)."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False)
    i = t.astype(int)
    f = t - i
    f = f * f * (3 - 2 * f)
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def fbm(seed: int, size: int, octaves: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    total = np.zeros((size, size))
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * value_noise(rng, size, 4 * 2**octave)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def draw() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    horizon = 0.62
    sky_top, sky_low = np.array([0.16, 0.22, 0.45]), np.array([0.98, 0.66, 0.42])
    t = np.clip(y / horizon, 0, 1)[..., None]
    image = sky_top * (1 - t) + sky_low * t
    clouds = np.clip((fbm(3, SIZE) - 0.5) * 3.0, 0, 1) * np.clip(1 - y / 0.5, 0, 1)
    image = image * (1 - 0.45 * clouds[..., None]) + np.array([1.0, 0.85, 0.8]) * 0.45 * clouds[..., None]

    ridge_far = 0.40 + 0.10 * fbm(5, SIZE)[SIZE // 2] - 0.05 * np.sin(x[0] * 5.0)
    ridge_near = 0.50 + 0.08 * fbm(7, SIZE)[SIZE // 3] + 0.06 * np.cos(x[0] * 3.0 + 1.0)
    rock = fbm(11, SIZE)
    for ridge, colour, shade in (
        (ridge_far, np.array([0.36, 0.33, 0.50]), 0.10),
        (ridge_near, np.array([0.20, 0.22, 0.28]), 0.18),
    ):
        inside = (y > ridge[None, :]) & (y < horizon)
        image[inside] = (colour * (1 - shade + 2 * shade * rock[..., None]))[inside]

    water = y >= horizon
    depth = np.clip((y - horizon) / (1 - horizon), 0, 1)
    ripples = 0.5 + 0.5 * np.sin(2 * np.pi * (x * 9 + 0.8 * fbm(13, SIZE) * 3) + (y * 140) * (1 - 0.5 * depth))
    mirrored = image[np.clip((2 * horizon - y) * SIZE, 0, SIZE - 1).astype(int), (x * SIZE).astype(int)]
    lake = 0.45 * mirrored + 0.55 * np.array([0.08, 0.24, 0.36])
    lake = lake * (0.85 + 0.3 * ripples[..., None] * (0.4 + 0.6 * fbm(17, SIZE)[..., None]))
    image[water] = lake[water]

    shore = (y > horizon - 0.01 + 0.02 * fbm(19, SIZE)) & (y < horizon + 0.012) & ~water
    image[shore] = np.array([0.12, 0.16, 0.10])
    for centre, height in ((0.08, 0.20), (0.16, 0.14), (0.86, 0.22), (0.93, 0.16)):
        tree = (np.abs(x - centre) < (y - (horizon - height)) * 0.35) & (y < horizon) & (y > horizon - height)
        image[tree] = np.array([0.06, 0.12, 0.08])

    mask = water & ~shore
    return np.clip(image, 0, 1), mask


def paint(rgb: np.ndarray) -> Image.Image:
    """A painterly rendition: flattened colour patches with directional brush streaks."""
    from PIL import ImageFilter

    rng = np.random.default_rng(23)
    streaks = rng.normal(0, 10, (SIZE, SIZE // 8, 3)).repeat(8, axis=1)
    canvas = np.clip(rgb.astype(np.float64) + streaks, 0, 255).astype(np.uint8)
    picture = Image.fromarray(canvas).filter(ImageFilter.ModeFilter(7)).filter(ImageFilter.SMOOTH_MORE)
    return picture.quantize(colors=48, method=Image.Quantize.MEDIANCUT).convert("RGB")


def main() -> None:
    image, mask = draw()
    rgb = (image * 255).round().astype(np.uint8)
    alpha = np.where(mask, 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(os.path.join(HERE, "lake.png"), optimize=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(os.path.join(HERE, "lake_mask.png"), optimize=True)
    Image.fromarray(np.dstack((rgb, alpha))).save(os.path.join(HERE, "t2c_lake_masked.png"), optimize=True)
    paint(rgb).save(os.path.join(HERE, "t2c_painting.png"), optimize=True)


if __name__ == "__main__":
    main()
