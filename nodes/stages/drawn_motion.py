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
follows the nearest ones. It is computed as the ratio of two blurred grids
(:func:`blurred_average`), in time that grows with the pixels, not with pixels
times arrows. Arrows act only on the connected part of the region
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
from ...kernels.morphology import edge_distance
from ...kernels.splat import splat_torch_
from .procedural_flow import MAX_SPEED, FlowSettings, flow_speed, taper_profile

WIDGET = "drawing"
SCHEMA_VERSION = 1
ASPECT_TOLERANCE = 0.02  # relative; previews are resized with rounding
MAX_ENTRIES = 20_000  # arrows, anchors and region points each (README); bounds the time of one flow


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
    _check_count(len(entries), key)
    return entries


def _check_count(count: int, what: str) -> None:
    if count > MAX_ENTRIES:
        raise InputError(WIDGET, f"has {count} {what}; at most {MAX_ENTRIES} are read: draw fewer, longer ones")


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


def _strokes(entries: list[dict]) -> tuple[Stroke, ...]:
    strokes, total = [], 0
    for i, entry in enumerate(entries):
        points = entry.get("points")
        total += len(points) if isinstance(points, list) else 0
        _check_count(total, "region points")
        strokes.append(_stroke(entry, i))
    return tuple(strokes)


def parse_drawing(text: str, need_arrows: bool = True) -> Drawing:
    """A :class:`Drawing` from the widget's JSON, or an :class:`InputError` naming the widget (also when it
    has no arrow and ``need_arrows``)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as error:
        raise InputError(WIDGET, f"is not valid JSON ({error}); draw on the node or send the schema in the README")
    except RecursionError:
        raise InputError(WIDGET, "is nested too deeply to be a drawing; send the schema in the README") from None
    if not isinstance(data, dict):
        raise InputError(WIDGET, f"must be a JSON object with version, width, height and arrows, got {text!r:.60}")
    if data.get("version") != SCHEMA_VERSION:
        raise InputError(WIDGET, f"has version {data.get('version')!r}; this pack reads version {SCHEMA_VERSION}")
    width = _number(data.get("width"), "width", positive=True)
    height = _number(data.get("height"), "height", positive=True)
    arrows = tuple(_arrow(e, i, width, height) for i, e in enumerate(_entries(data, "arrows")))
    anchors = tuple(_anchor(e, i, width, height) for i, e in enumerate(_entries(data, "anchors")))
    regions = _strokes(_entries(data, "regions"))
    if not arrows and need_arrows:
        held = f"has {len(anchors)} anchor(s) but no arrow" if anchors else "has no arrow"
        raise InputError(WIDGET, f"{held}: drag on the picture to draw at least one arrow along the motion")
    return Drawing(width, height, arrows, anchors, regions)


# --- geometry -----------------------------------------------------------------------------------

Box = tuple[slice, slice]  # rows, columns


def _box(shape: tuple[int, int], xs: tuple[float, ...], ys: tuple[float, ...], reach: float) -> Box:
    """The pixels whose centres may lie within ``reach`` of the points ``(xs, ys)``' bounding box."""

    def span(low: float, high: float, size: int) -> slice:
        start, stop = math.floor(low - reach), math.ceil(high + reach)
        return slice(min(max(start, 0), size), min(max(stop, 0), size))

    return span(min(ys), max(ys), shape[0]), span(min(xs), max(xs), shape[1])


def _centres(box: Box) -> tuple[Tensor, Tensor]:
    """``(x, y)`` pixel-centre coordinates ``[h, w]`` each of the pixels in ``box`` (pixel (0, 0) covers [0, 1]^2)."""
    rows, cols = (torch.arange(s.start, s.stop) + 0.5 for s in box)
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    return xs, ys


def segment_distance(xs: Tensor, ys: Tensor, a: tuple[float, float], b: tuple[float, float]) -> Tensor:
    """Distance of every point ``(xs, ys)`` to the segment ``a``-``b``."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = ((xs - a[0]) * dx + (ys - a[1]) * dy) / length2 if length2 > 0 else torch.zeros_like(xs)
    t = t.clamp(0.0, 1.0)
    return torch.hypot(xs - (a[0] + t * dx), ys - (a[1] + t * dy))


def _near_segment(shape: tuple[int, int], a: tuple[float, float], b: tuple[float, float], radius: float):
    """``(box, [h, w] bool)``: the pixels of ``box`` whose centres lie within ``radius`` of the segment ``a``-``b``."""
    box = _box(shape, (a[0], b[0]), (a[1], b[1]), radius)
    return box, segment_distance(*_centres(box), a, b) <= radius


def _from_point(shape: tuple[int, int], x: float, y: float, reach: float) -> tuple[Box, Tensor]:
    """``(box, [h, w])``: the box of pixels within ``reach`` of ``(x, y)`` and their centres' distances to it."""
    box = _box(shape, (x,), (y,), reach)
    xs, ys = _centres(box)
    return box, torch.hypot(xs - x, ys - y)


def paint_regions(mask: Tensor, strokes: tuple[Stroke, ...]) -> Tensor:
    """``[H, W]`` bool: ``mask`` with the brush strokes painted in (or erased), in order."""
    region = mask.clone()
    for stroke in strokes:
        points = stroke.points if len(stroke.points) > 1 else stroke.points * 2
        for a, b in zip(points[:-1], points[1:]):
            box, near = _near_segment(region.shape, a, b, stroke.radius)
            if stroke.erase:
                region[box] &= ~near
            else:
                region[box] |= near
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
    held = torch.zeros(height, width, dtype=torch.bool)
    for anchor in anchors:
        box, distance = _from_point((height, width), anchor.x, anchor.y, anchor.radius + extra)
        held[box] |= distance <= anchor.radius + extra
    return held


def label_parts(region: Tensor) -> tuple[Tensor, list[Box]]:
    """``([H, W] int64 labels, boxes)``: 8-connected parts of ``region`` (0 = outside); part ``i``
    lies in ``boxes[i - 1]``."""
    from scipy import ndimage  # a dependency of scikit-learn, which the pack requires

    labels, _ = ndimage.label(region.numpy(), structure=[[1, 1, 1], [1, 1, 1], [1, 1, 1]])
    return torch.from_numpy(labels).long(), ndimage.find_objects(labels)


def _arrow_ends(arrows: tuple[Arrow, ...]) -> Tensor:
    """``[A, 4]`` float64 ``(x0, y0, x1, y1)`` of each arrow."""
    return torch.tensor([(a.x0, a.y0, a.x1, a.y1) for a in arrows], dtype=torch.float64).reshape(-1, 4)


def segment_points(starts: Tensor, ends: Tensor, spacing: float) -> tuple[Tensor, Tensor]:
    """``(points [N, 2], owner [N])``: points at most ``spacing`` apart along each segment from
    ``starts [S, 2]`` to ``ends [S, 2]``, both ends included; ``owner`` is each point's segment."""
    shaft = ends - starts
    counts = ((torch.hypot(shaft[:, 0], shaft[:, 1]) / spacing).ceil().long() + 1).clamp(min=2)
    owner = torch.repeat_interleave(counts)
    step = (torch.arange(owner.numel()) - (counts.cumsum(0) - counts)[owner]).double()
    return starts[owner] + (step / (counts[owner] - 1))[:, None] * shaft[owner], owner


def arrow_samples(arrows: tuple[Arrow, ...], spacing: float, speed: float) -> tuple[Tensor, Tensor]:
    """``(points [N, 2] (x, y), velocities [N, 2] px/frame)`` along the arrows' shafts.

    Every arrow is sampled at most ``spacing`` apart; its velocity points along
    it, the longest arrow's at ``speed`` and the others' in proportion.
    """
    ends = _arrow_ends(arrows)
    points, owner = segment_points(ends[:, :2], ends[:, 2:], spacing)
    shaft = ends[:, 2:] - ends[:, :2]
    longest = float(torch.hypot(shaft[:, 0], shaft[:, 1]).max())
    return points, shaft[owner] * (speed / longest)


def _pixel_of(points: Tensor, shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """``(rows [N], cols [N])`` of the pixel under each point ``[N, 2]`` (clamped to the picture)."""
    return points[:, 1].floor().long().clamp(0, shape[0] - 1), points[:, 0].floor().long().clamp(0, shape[1] - 1)


def _label_at(labels: Tensor, points: Tensor) -> Tensor:
    """``[N]`` label of the pixel under each point (0 where it is outside the region)."""
    return labels[_pixel_of(points, labels.shape)]


def _gaussian(centres: Tensor, nodes: Tensor, occupied: Tensor, sigma: float) -> Tensor:
    """``[len(centres), len(nodes)]`` weights ``exp(-d^2 / 2 sigma^2)``, each row divided by its
    largest value over the ``occupied`` nodes (a per-pixel factor, which cancels in a ratio).

    Weights of empty nodes, which multiply zeros, are capped at 1 so they stay finite.
    """
    d2 = (centres[:, None] - nodes[None, :]).square() / (2.0 * sigma * sigma)
    return torch.exp((d2[:, occupied].amin(dim=1, keepdim=True) - d2).clamp(max=0.0))


def blurred_average(points: Tensor, values: Tensor, sigma: float, box: Box) -> Tensor:
    """``[2, h, w]`` Gaussian-weighted (Nadaraya-Watson) average of ``values [N, 2]`` at the pixels of ``box``.

    ``sum_i w_i v_i / sum_i w_i`` with ``w_i = exp(-|x - p_i|^2 / 2 sigma^2)`` is
    the ratio of two blurred grids: the samples' values and weights spread
    bilinearly onto nodes ``sigma / 4`` apart, each blurred by the separable
    Gaussian and read at the pixel centres (matrix products whose cost grows
    with the pixels times the nodes across the samples, not with the samples).
    Spreading keeps each sample's weight and centre of mass, so the weights
    change by O((cell / sigma)^2) near the samples. Each pixel's row and column
    factors are divided by their largest value over occupied node rows and
    columns; what remains of its largest weight is at least
    ``exp(-s^2 / 2 sigma^2)`` for the shorter side ``s`` of the samples' bounding
    box, far above float64's underflow while ``sigma >= s / 25``, so pixels far
    from every sample take their nearest samples' values instead of 0/0.
    """
    xs, ys = (torch.arange(s.start, s.stop, dtype=torch.float64) + 0.5 for s in (box[1], box[0]))
    low = points.amin(0)
    cell = sigma / 4.0
    cols, rows = (((points.amax(0) - low) / cell).floor().long() + 2).tolist()
    at = (points - low) / cell  # node coordinates: every sample lies inside the grid
    carried = torch.cat((values, torch.ones(len(values), 1, dtype=values.dtype)), 1).T  # [3, N]: value, weight
    grid = torch.zeros(3, rows * cols, dtype=values.dtype)
    splat_torch_(grid, carried, at[:, 0], at[:, 1], torch.ones(len(values), dtype=values.dtype), cols)
    grid = grid.view(3, rows, cols)
    occupied = grid[2] > 0
    across = _gaussian(xs, low[0] + cell * torch.arange(cols, dtype=torch.float64), occupied.any(0), sigma)
    down = _gaussian(ys, low[1] + cell * torch.arange(rows, dtype=torch.float64), occupied.any(1), sigma)
    blurred = down @ grid @ across.T  # [3, h, w]
    return blurred[:2] / blurred[2]


@dataclass(frozen=True)
class DrawnFlowSettings:
    sigma_fraction: float = 0.08  # Gaussian width, fraction of the shorter side
    taper: FlowSettings = FlowSettings()


def moving_region(drawing: Drawing, mask: Tensor | None, max_speed: float) -> tuple[Tensor, list[Box], Tensor]:
    """``(labels [H, W], boxes, moving [H, W] bool)`` for a drawing already scaled to the picture.

    ``labels`` numbers the connected parts of the painted region (mask plus
    strokes) and ``boxes`` bound them (:func:`label_parts`); ``moving`` is that
    region minus the anchors and their guard rings for a flow of at most
    ``max_speed`` px/frame.
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
    labels, boxes = label_parts(region)
    moving = region & ~anchor_disks(drawing.anchors, height, width, anchor_guard(max_speed))
    if not moving.any():
        raise InputError(WIDGET, "its anchors cover the whole moving region: nothing would move")
    return labels, boxes, moving


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
    labels, boxes, moving = moving_region(drawing, mask, speed)
    sigma = settings.sigma_fraction * min(height, width)
    points, velocities = arrow_samples(drawing.arrows, max(1.0, sigma / 4.0), speed)
    owners = _label_at(labels, points)
    if not bool((owners > 0).any()):
        raise InputError(WIDGET, "no arrow touches the moving region: draw the arrows on the water (the mask)")
    flow = torch.zeros(2, height, width, dtype=torch.float64)
    for part in owners[owners > 0].unique().tolist():
        box = boxes[part - 1]
        inside = moving[box] & (labels[box] == part)
        if inside.any():
            mine = owners == part
            flow[:, box[0], box[1]][:, inside] = blurred_average(points[mine], velocities[mine], sigma, box)[:, inside]
    taper_px = max(3, round(settings.taper.taper_fraction * min(height, width)))
    flow *= taper_profile(moving, taper_px).double()
    return flow.float(), moving


def pinned_flow(drawing: Drawing, flow: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """A given flow (e.g. a clip's average motion) held still at the drawing's anchors.

    Args:
        drawing: anchors and painted strokes, scaled to the picture; no arrows (they would draw a
            second motion over the given one).
        flow: ``[2, H, W]`` px/frame.
        mask: ``[H, W]`` bool, or ``None``: added to the flow's own moving pixels, as strokes are.

    Returns:
        ``(flow [2, H, W], moving [H, W] bool)``: the flow, zero outside the region and inside the
        anchors' guard rings (:func:`moving_region`).
    """
    if drawing.arrows:
        raise InputError(WIDGET, "has arrows while a flow is connected: draw only anchors (and regions) to pin "
                         "the connected flow, or disconnect it to draw the motion")
    base = (flow != 0).any(dim=0)
    _, _, moving = moving_region(drawing, base | mask if mask is not None else base, float(flow_speed(flow).max()))
    return flow * moving, moving


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
    labels, _, _ = moving_region(drawing, mask, 0.0)
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
    _, _, moving = moving_region(drawing, mask, float(flow_speed(flow).max()))
    return flow * moving, moving


# --- preview ------------------------------------------------------------------------------------


def draw_arrows(rgb: Tensor, drawing: Drawing) -> Tensor:
    """``[H, W, 3]``: ``rgb`` with the arrows (black, with heads) and anchors (rings) drawn on it.

    The lines are points half a pixel apart thickened by one distance transform,
    so thousands of arrows cost about as much as one.
    """
    height, width = rgb.shape[:2]
    short = min(height, width)
    thickness = max(0.75, short / 256)
    ink = _arrow_ink(drawing.arrows, height, width, thickness) if drawing.arrows else torch.zeros(height, width,
                                                                                                  dtype=torch.bool)
    for anchor in drawing.anchors:
        box, distance = _from_point((height, width), anchor.x, anchor.y, anchor.radius + thickness)
        ink[box] |= (distance - anchor.radius).abs() <= thickness
    out = rgb.clone()
    out[ink] = 0.0
    return out


def _arrow_ink(arrows: tuple[Arrow, ...], height: int, width: int, thickness: float) -> Tensor:
    """``[H, W]`` bool: the pixels of the arrows' lines and heads, ``thickness`` px wide."""
    short = min(height, width)
    ends = _arrow_ends(arrows)
    tail, tip = ends[:, :2], ends[:, 2:]
    back = tail - tip
    head = (0.35 * torch.hypot(back[:, 0], back[:, 1])).clamp(max=0.05 * short)[:, None]
    angle = torch.atan2(back[:, 1], back[:, 0])
    barbs = [tip + head * torch.stack((torch.cos(angle + turn), torch.sin(angle + turn)), 1) for turn in (-0.5, 0.5)]
    points, _ = segment_points(torch.cat((tail, tip, tip)), torch.cat((tip, *barbs)), 0.5)
    marked = torch.zeros(height, width, dtype=torch.bool)
    marked[_pixel_of(points, (height, width))] = True
    low, high = points.amin(0).tolist(), points.amax(0).tolist()
    box = _box((height, width), (low[0], high[0]), (low[1], high[1]), thickness + 1.0)
    ink = torch.zeros(height, width, dtype=torch.bool)
    ink[box] = edge_distance(~marked[box]) <= thickness
    return ink
