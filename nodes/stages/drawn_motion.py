"""Motion drawn on the picture: arrows, anchors and painted regions -> a velocity field.

The drawing is JSON (schema version 1; the same in the editor's widget and over the API)::

    {
      "version": 1,
      "width": 512, "height": 384,            # size of the picture the drawing was made on
      "arrows":  [{"x0": 40, "y0": 300, "x1": 200, "y1": 290}, ...],
      "anchors": [{"x": 120, "y": 80, "radius": 12}, ...],
      "regions": [{"points": [[10, 200], [60, 210]], "radius": 16, "erase": false}, ...]
    }

Coordinates are pixels of ``width`` x ``height`` with the origin at the top-left
corner and y pointing down; they are scaled to the picture's real size, so a
drawing made on a smaller preview fits the full picture (the aspect ratio must
match). An arrow points where the water goes; the longest arrow moves at the
node's ``speed`` and the others in proportion to their length. An anchor is a
disk that must not move. A region stroke paints (or, with ``erase``, removes)
a brush line of the given radius into the moving region, on top of the
optional mask.

Interpolation (``procedural``): inside each connected part of the moving region
the velocity is the Nadaraya-Watson average of that part's arrow samples with
Gaussian weights (width ``sigma_fraction`` of the shorter side). Being a convex
combination it never overshoots (no speed above the longest arrow's, no
direction no arrow has, unlike thin-plate or RBF interpolation), it is smooth,
it needs no solver (harmonic interpolation would), and far from every arrow it
follows the nearest ones. Arrows act only on the connected part of the region
they lie in, so separate parts move in different directions without a batch of
masks. Anchors are cut out of the moving region with a guard ring as wide as
the renderer's reach (:func:`.frames.animated_region`), so their pixels are
bit-identical in every frame; the speed then tapers to zero towards the mask's
edge and the anchors exactly as for the procedural flow.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ...kernels.errors import InputError
from .procedural_flow import MAX_SPEED, FlowSettings, taper_profile

WIDGET = "drawing"
SCHEMA_VERSION = 1
ASPECT_TOLERANCE = 0.02  # relative; previews are resized with rounding


@dataclass(frozen=True)
class Arrow:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def length(self) -> float:
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)


@dataclass(frozen=True)
class Anchor:
    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class Stroke:
    points: tuple[tuple[float, float], ...]
    radius: float
    erase: bool = False


@dataclass(frozen=True)
class Drawing:
    """A validated drawing, in pixels of ``width`` x ``height``."""

    width: float
    height: float
    arrows: tuple[Arrow, ...]
    anchors: tuple[Anchor, ...] = ()
    regions: tuple[Stroke, ...] = ()

    def scaled_to(self, height: int, width: int) -> "Drawing":
        """The same drawing in pixels of a ``height`` x ``width`` picture."""
        sx, sy = width / self.width, height / self.height
        if abs(sx / sy - 1.0) > ASPECT_TOLERANCE:
            raise InputError(
                WIDGET,
                f"was drawn on a {self.width:g}x{self.height:g} picture but the image is {width}x{height} "
                "(another aspect ratio); draw on this picture",
            )
        sr = (sx + sy) / 2
        return Drawing(
            width,
            height,
            tuple(Arrow(a.x0 * sx, a.y0 * sy, a.x1 * sx, a.y1 * sy) for a in self.arrows),
            tuple(Anchor(a.x * sx, a.y * sy, a.radius * sr) for a in self.anchors),
            tuple(Stroke(tuple((x * sx, y * sy) for x, y in s.points), s.radius * sr, s.erase) for s in self.regions),
        )


# --- parsing -------------------------------------------------------------------------------------


def _number(value: object, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(WIDGET, f"{where} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise InputError(WIDGET, f"{where} must be > 0, got {value!r}")
    return float(value)


def _inside(x: float, y: float, width: float, height: float, where: str) -> None:
    if not (0.0 <= x <= width and 0.0 <= y <= height):
        raise InputError(
            WIDGET, f"{where} at ({x:g}, {y:g}) lies outside the {width:g}x{height:g} picture it was drawn on"
        )


def _entries(data: dict, key: str) -> list[dict]:
    entries = data.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(WIDGET, f"'{key}' must be a list of objects, got {entries!r:.80}")
    return entries


def _arrow(entry: dict, i: int, width: float, height: float) -> Arrow:
    where = f"arrow {i + 1}"
    arrow = Arrow(*(_number(entry.get(k), f"{where}: {k}") for k in ("x0", "y0", "x1", "y1")))
    _inside(arrow.x0, arrow.y0, width, height, f"{where}'s start")
    _inside(arrow.x1, arrow.y1, width, height, f"{where}'s end")
    if arrow.length < 1.0:
        raise InputError(
            WIDGET, f"{where} has zero length (start and end less than a pixel apart); drag to draw an arrow"
        )
    return arrow


def _anchor(entry: dict, i: int, width: float, height: float) -> Anchor:
    where = f"anchor {i + 1}"
    anchor = Anchor(
        _number(entry.get("x"), f"{where}: x"),
        _number(entry.get("y"), f"{where}: y"),
        _number(entry.get("radius"), f"{where}: radius", positive=True),
    )
    _inside(anchor.x, anchor.y, width, height, where)
    return anchor


def _stroke(entry: dict, i: int) -> Stroke:
    where = f"region stroke {i + 1}"
    points = entry.get("points")
    if not isinstance(points, list) or not points or not all(isinstance(p, list) and len(p) == 2 for p in points):
        raise InputError(WIDGET, f"{where}: 'points' must be a non-empty list of [x, y] pairs")
    xy = tuple((_number(p[0], f"{where}: x"), _number(p[1], f"{where}: y")) for p in points)
    return Stroke(xy, _number(entry.get("radius"), f"{where}: radius", positive=True), bool(entry.get("erase", False)))


def parse_drawing(text: str) -> Drawing:
    """A :class:`Drawing` from the widget's JSON, or an :class:`InputError` naming the widget."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as error:
        raise InputError(WIDGET, f"is not valid JSON ({error}); draw on the node or send the schema in the README")
    if not isinstance(data, dict):
        raise InputError(WIDGET, f"must be a JSON object with version, width, height and arrows, got {text!r:.60}")
    if data.get("version") != SCHEMA_VERSION:
        raise InputError(WIDGET, f"has version {data.get('version')!r}; this pack reads version {SCHEMA_VERSION}")
    width = _number(data.get("width"), "width", positive=True)
    height = _number(data.get("height"), "height", positive=True)
    arrows = tuple(_arrow(e, i, width, height) for i, e in enumerate(_entries(data, "arrows")))
    anchors = tuple(_anchor(e, i, width, height) for i, e in enumerate(_entries(data, "anchors")))
    regions = tuple(_stroke(e, i) for i, e in enumerate(_entries(data, "regions")))
    if not arrows:
        held = f"has {len(anchors)} anchor(s) but no arrow" if anchors else "has no arrow"
        raise InputError(WIDGET, f"{held}: drag on the picture to draw at least one arrow along the motion")
    return Drawing(width, height, arrows, anchors, regions)


# --- geometry -----------------------------------------------------------------------------------


def _pixel_grid(height: int, width: int) -> tuple[Tensor, Tensor]:
    """``(x, y)`` pixel-centre coordinates ``[H, W]`` each (pixel (0, 0) covers [0, 1]^2)."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return xs, ys


def segment_distance(xs: Tensor, ys: Tensor, a: tuple[float, float], b: tuple[float, float]) -> Tensor:
    """Distance of every point ``(xs, ys)`` to the segment ``a``-``b``."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = ((xs - a[0]) * dx + (ys - a[1]) * dy) / length2 if length2 > 0 else torch.zeros_like(xs)
    t = t.clamp(0.0, 1.0)
    return torch.hypot(xs - (a[0] + t * dx), ys - (a[1] + t * dy))


def paint_regions(mask: Tensor, strokes: tuple[Stroke, ...]) -> Tensor:
    """``[H, W]`` bool: ``mask`` with the brush strokes painted in (or erased), in order."""
    height, width = mask.shape
    xs, ys = _pixel_grid(height, width)
    region = mask.clone()
    for stroke in strokes:
        points = stroke.points if len(stroke.points) > 1 else stroke.points * 2
        covered = torch.zeros_like(region)
        for a, b in zip(points[:-1], points[1:]):
            covered |= segment_distance(xs, ys, a, b) <= stroke.radius
        region = region & ~covered if stroke.erase else region | covered
    return region


def anchor_guard(speed: float) -> float:
    """Extra radius (px) around an anchor where the flow is zero.

    The renderer leaves every pixel farther than ``ceil(max |F|) + 2`` (a square
    dilation, so up to that times sqrt 2 in Euclidean distance) from a moving
    pixel untouched; the field never exceeds ``speed``.
    """
    return (math.ceil(speed) + 2) * math.sqrt(2.0) + 1.0


def anchor_disks(anchors: tuple[Anchor, ...], height: int, width: int, extra: float = 0.0) -> Tensor:
    """``[H, W]`` bool: pixels within ``radius + extra`` of an anchor."""
    xs, ys = _pixel_grid(height, width)
    held = torch.zeros(height, width, dtype=torch.bool)
    for anchor in anchors:
        held |= torch.hypot(xs - anchor.x, ys - anchor.y) <= anchor.radius + extra
    return held


def label_parts(region: Tensor) -> tuple[Tensor, int]:
    """``([H, W] int64 labels, count)``: 8-connected parts of ``region``, 0 = outside."""
    from scipy import ndimage  # a dependency of scikit-learn, which the pack requires

    labels, count = ndimage.label(region.numpy(), structure=[[1, 1, 1], [1, 1, 1], [1, 1, 1]])
    return torch.from_numpy(labels).long(), int(count)


def arrow_samples(arrows: tuple[Arrow, ...], spacing: float, speed: float) -> tuple[Tensor, Tensor]:
    """``(points [N, 2] (x, y), velocities [N, 2] px/frame)`` along the arrows' shafts.

    Every arrow is sampled at most ``spacing`` apart; its velocity points along
    it, the longest arrow's at ``speed`` and the others' in proportion.
    """
    longest = max(a.length for a in arrows)
    points, velocities = [], []
    for arrow in arrows:
        count = max(2, math.ceil(arrow.length / spacing) + 1)
        t = torch.linspace(0.0, 1.0, count, dtype=torch.float64)
        points.append(torch.stack((arrow.x0 + t * (arrow.x1 - arrow.x0), arrow.y0 + t * (arrow.y1 - arrow.y0)), 1))
        velocity = torch.tensor([arrow.x1 - arrow.x0, arrow.y1 - arrow.y0], dtype=torch.float64) * (speed / longest)
        velocities.append(velocity.expand(count, 2))
    return torch.cat(points), torch.cat(velocities)


def _label_at(labels: Tensor, points: Tensor) -> Tensor:
    """``[N]`` label of the pixel under each point (0 where it is outside the region)."""
    height, width = labels.shape
    cols = points[:, 0].floor().long().clamp(0, width - 1)
    rows = points[:, 1].floor().long().clamp(0, height - 1)
    return labels[rows, cols]


def gaussian_average(targets: Tensor, points: Tensor, values: Tensor, sigma: float, chunk: int = 65536) -> Tensor:
    """``[M, 2]`` Nadaraya-Watson average of ``values [N, 2]`` at ``targets [M, 2]``.

    Weights ``exp(-d^2 / 2 sigma^2)`` are normalised in log space, so targets
    far from every sample take their nearest samples' values instead of 0/0.
    """
    out = torch.empty(targets.shape[0], 2, dtype=torch.float64)
    for start in range(0, targets.shape[0], chunk):
        block = targets[start : start + chunk]
        logits = -torch.cdist(block, points).square() / (2.0 * sigma * sigma)
        out[start : start + chunk] = torch.softmax(logits, dim=1) @ values
    return out


@dataclass(frozen=True)
class DrawnFlowSettings:
    sigma_fraction: float = 0.08  # Gaussian width, fraction of the shorter side
    taper: FlowSettings = FlowSettings()


def moving_region(drawing: Drawing, mask: Tensor | None, max_speed: float) -> tuple[Tensor, Tensor]:
    """``(labels [H, W], moving [H, W] bool)`` for a drawing already scaled to the picture.

    ``labels`` numbers the connected parts of the painted region (mask plus
    strokes); ``moving`` is that region minus the anchors and their guard rings
    for a flow of at most ``max_speed`` px/frame.
    """
    height, width = int(drawing.height), int(drawing.width)
    base = mask if mask is not None else torch.zeros(height, width, dtype=torch.bool)
    region = paint_regions(base, drawing.regions)
    if not region.any():
        raise InputError(
            "mask", "nothing marks the moving region: connect a mask or paint the region on the drawing widget"
        )
    if region.all():
        raise InputError("mask", "covers the whole picture: a cinemagraph needs a still part")
    labels, _ = label_parts(region)
    moving = region & ~anchor_disks(drawing.anchors, height, width, anchor_guard(max_speed))
    if not moving.any():
        raise InputError(WIDGET, "its anchors cover the whole moving region: nothing would move")
    return labels, moving


def drawn_flow(
    drawing: Drawing, mask: Tensor | None, speed: float, settings: DrawnFlowSettings = DrawnFlowSettings()
) -> tuple[Tensor, Tensor]:
    """Velocity field following the drawn arrows.

    Args:
        drawing: scaled to the picture (:meth:`Drawing.scaled_to`).
        mask: ``[H, W]`` bool moving region, or ``None`` when only painted.
        speed: px/frame of the longest arrow, ``(0, MAX_SPEED]``.

    Returns:
        ``(flow [2, H, W] float32 px/frame, moving region [H, W] bool)``; the flow
        is zero outside the region, inside anchors' guard rings and in parts no
        arrow touches.
    """
    check_speed(speed)
    height, width = int(drawing.height), int(drawing.width)
    labels, moving = moving_region(drawing, mask, speed)
    sigma = settings.sigma_fraction * min(height, width)
    points, velocities = arrow_samples(drawing.arrows, max(1.0, sigma / 4.0), speed)
    owners = _label_at(labels, points)
    if not bool((owners > 0).any()):
        raise InputError(WIDGET, "no arrow touches the moving region: draw the arrows on the water (the mask)")
    xs, ys = _pixel_grid(height, width)
    flow = torch.zeros(2, height, width, dtype=torch.float64)
    for part in owners[owners > 0].unique().tolist():
        inside = moving & (labels == part)
        if not inside.any():
            continue
        targets = torch.stack((xs[inside], ys[inside]), 1).double()
        mine = owners == part
        flow[:, inside] = gaussian_average(targets, points[mine], velocities[mine], sigma).T
    taper_px = max(3, round(settings.taper.taper_fraction * min(height, width)))
    flow *= taper_profile(moving, taper_px).double()
    return flow.float(), moving


def check_speed(speed: float) -> None:
    if not (math.isfinite(speed) and 0.0 < speed <= MAX_SPEED):
        raise InputError("speed", f"must be in (0, {MAX_SPEED}] px/frame, got {speed}")


# --- the direction network's sparse hint --------------------------------------------------------


def drawn_hint(drawing: Drawing, labels: Tensor, size: tuple[int, int]) -> Tensor:
    """``[1, 2, h, w]`` sparse hint for the direction network from the arrows' shafts.

    Each pixel an arrow crosses inside the painted region holds its direction
    scaled by its length relative to the longest arrow, divided by
    ``FLOW_NORM`` as the network was trained (the longest arrow is a 1 px/frame
    hint, the convention of :func:`.networks.predict.direction_hint`); every
    other pixel is zero, as in SLR-SFS's sparse training hints.
    """
    from .networks.flow_net import FLOW_NORM

    net_h, net_w = size
    height, width = labels.shape
    sx, sy = net_w / width, net_h / height
    points, velocities = arrow_samples(drawing.arrows, 0.5 / max(sx, sy), 1.0)
    inside = _label_at(labels, points) > 0
    cols = (points[inside, 0] * sx).floor().long().clamp(0, net_w - 1)
    rows = (points[inside, 1] * sy).floor().long().clamp(0, net_h - 1)
    hint = torch.zeros(1, 2, net_h, net_w)
    hint[0, :, rows, cols] = (velocities[inside] / FLOW_NORM).float().T
    return hint


def drawn_direction_flow(network, picture: Tensor, drawing: Drawing, mask: Tensor | None, speed: float, clamp):
    """``(flow [2, H, W] px/frame, moving [H, W] bool)`` from the hint network steered by the arrows.

    ``picture`` is ``[H, W, C]`` in [0, 1] and ``drawing`` scaled to it; ``speed``
    and ``clamp`` as for :func:`.networks.predict.learned_direction_flow`.
    """
    from .networks.predict import check_speed_options, network_inputs, network_output_to_flow, network_size

    check_speed_options(speed, clamp)
    labels, _ = moving_region(drawing, mask, 0.0)
    size = network_size(*labels.shape, network.config.multiple)
    rgb, net_mask = network_inputs(picture.cpu(), labels > 0, size)
    hint = drawn_hint(drawing, labels, size)
    if not hint.any():
        raise InputError(WIDGET, "no arrow touches the moving region: draw the arrows on the water (the mask)")
    device = next(network.parameters()).device
    with torch.inference_mode():
        output = network(torch.cat((rgb, net_mask, hint), 1).to(device))
    flow = network_output_to_flow(output, labels > 0, speed, clamp, tuple(labels.shape))
    # The guard ring depends on the largest speed, known only now.
    _, moving = moving_region(drawing, mask, float(flow.norm(dim=0).max()))
    return flow * moving, moving


# --- preview ------------------------------------------------------------------------------------


def draw_arrows(rgb: Tensor, drawing: Drawing) -> Tensor:
    """``[H, W, 3]``: ``rgb`` with the arrows (black, with heads) and anchors (rings) drawn on it."""
    height, width = rgb.shape[:2]
    xs, ys = _pixel_grid(height, width)
    short = min(height, width)
    thickness = max(0.75, short / 256)
    ink = torch.zeros(height, width, dtype=torch.bool)
    for arrow in drawing.arrows:
        ink |= segment_distance(xs, ys, (arrow.x0, arrow.y0), (arrow.x1, arrow.y1)) <= thickness
        head = min(0.35 * arrow.length, 0.05 * short)
        back = math.atan2(arrow.y0 - arrow.y1, arrow.x0 - arrow.x1)
        for turn in (-0.5, 0.5):
            tip = (arrow.x1 + head * math.cos(back + turn), arrow.y1 + head * math.sin(back + turn))
            ink |= segment_distance(xs, ys, (arrow.x1, arrow.y1), tip) <= thickness
    for anchor in drawing.anchors:
        ring = torch.hypot(xs - anchor.x, ys - anchor.y) - anchor.radius
        ink |= ring.abs() <= thickness
    out = rgb.clone()
    out[ink] = 0.0
    return out
