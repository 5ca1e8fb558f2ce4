"""From a clip to a seamless loop: the still part frozen, the moving part looped.

A clip (:mod:`.clips`) is read in a few passes, one frame at a time:

1. **Flicker.** Each frame is matched to the reference frame by a gain and an
   offset per channel, fitted by least squares on the still pixels
   (:func:`deflicker`): exposure flicker and slow brightness drift do not count
   as motion, and the moving region keeps the reference frame's brightness, so
   it sits in the frozen picture without a visible edge.
2. **Region.** Without a mask, the region is where the deflickered clip changes:
   the mean absolute step between frames (luminance, 3x3 average) above a
   threshold, with specks removed by an opening and pinholes by a closing
   (:mod:`...kernels.morphology`).
3. **Motion.** Either
   * ``eulerian``: dense optical flow (OpenCV's DIS) between consecutive frames
     inside the region's box, averaged over the clip (Holynski et al. 2021 built
     their training flows this way): one static velocity field ``[2, H, W]``,
     which EulerIntegrate and SymmetricSplatFrameGen animate from the reference
     frame; or
   * ``loop``: the clip's own frames. The span ``[s, s + p)`` whose seam is the
     cheapest is chosen (video textures, Schödl et al. 2000): the cost of
     jumping from frame ``s + p - 1`` back to ``s`` is how unlike frame ``s`` is
     to frame ``s + p`` (which would naturally follow), and likewise the frames
     next to them (:data:`TAPS`), so the jump keeps the motion's speed as well as
     its look. Each connected part of the region has a start of its own (a
     common period keeps the whole loop exact), as Liao, Joshi and Hoppe (2013)
     give each pixel one, so parts whose good spans lie at different times of
     the clip all loop well. In the last ``blend`` frames each pixel switches over
     to the frames that naturally lead into the start, at the frame where the two
     agree best (:func:`switch_weights`; a crossfade would show moving detail
     twice), so the seam step is a natural step.

Outside the region every output frame is the reference frame, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...kernels.errors import InputError
from ...kernels.morphology import bounding_box, dilate, erode
from .clips import Clip, clip_frame
from .drawn_motion import label_parts
from .inputs import require_finite

ProgressFn = Callable[[int, int], None]

LOOP_METHODS = ("eulerian", "loop")
DEFAULT_THRESHOLD = 0.015  # mean |step| per frame (0..1) above which a pixel moves; sensor noise stays below
DEFAULT_SPECKLE = 2  # px: radius of the opening that removes specks from a derived region
FILLED_HOLE_SHARE = 0.01  # still patches enclosed by a derived region, up to this share of the frame, move too
DEFAULT_BLEND = 6  # frames before the seam in which each pixel switches to the frames that lead into the start
SWITCH_RADIUS = 4  # px: the seam's switching times are chosen over, and feathered across, this radius
TAPS = (-1, 0, 1)  # frame offsets whose differences make a seam's cost (look and speed)
FEATURE_SIDE = 64  # the region's box is averaged down to about this many pixels a side for seam costs
FIT_STRIDE = 4  # every 4th pixel of each axis fits the flicker gains
MAX_PARTS = 8  # connected parts of the region with starts of their own (smaller ones share the last's)
MAX_SPREAD = 24  # frames between the parts' earliest and latest start (their crops are held while streaming)
FLOW_LEVEL_PX = 192  # DIS's finest level is about this many px a side (its fast preset's 1/4 gives speeds 20-30 % low)
FLOW_PAIRS = 60  # steps whose flow is averaged, at most (spread over the clip)
FLOW_MARGIN = 16  # px of context around the region's box for optical flow
LUMA = (0.299, 0.587, 0.114)


# ---------------------------------------------------------------- flicker and region


def luminance(frame: Tensor, gain: Optional[Tensor] = None, offset: Optional[Tensor] = None) -> Tensor:
    """``[H, W]`` luma of an ``[H, W, C]`` frame (C = 1 is its own luma; alpha is ignored), of the
    deflickered frame ``(frame - offset) / gain`` when ``gain`` and ``offset`` ``[C]`` are given
    (one weighted sum: the deflickered frame itself is never made)."""
    channels = 1 if frame.shape[-1] < 3 else 3
    weights = torch.tensor(LUMA[:channels] if channels == 3 else (1.0,))
    bias = torch.zeros(())
    if gain is not None:
        weights = weights / gain[:channels]
        bias = -(weights * offset[:channels]).sum()
    luma = frame[..., 0] * weights[0] + bias
    for c in range(1, channels):
        luma.add_(frame[..., c], alpha=float(weights[c]))
    return luma


def fit_gains(frame: Tensor, reference: Tensor, still: Tensor) -> tuple[Tensor, Tensor]:
    """``(gain [C], offset [C])`` with ``frame ~ gain * reference + offset`` on the ``still [H, W]`` pixels,
    by least squares on every ``FIT_STRIDE``-th pixel of each axis."""
    s = FIT_STRIDE
    pick = still[::s, ::s]
    if not pick.any():
        pick = still
        s = 1
    x, y = reference[::s, ::s][pick], frame[::s, ::s][pick]  # [P, C]
    mx, my = x.mean(0), y.mean(0)
    var = (x - mx).square().mean(0)
    cov = ((x - mx) * (y - my)).mean(0)
    gain = torch.where(var > 1e-8, cov / var.clamp(min=1e-8), torch.ones_like(var)).clamp(0.25, 4.0)
    return gain, my - gain * mx


def deflicker(frame: Tensor, gain: Tensor, offset: Tensor) -> Tensor:
    """``[..., C]`` frame (or a crop of it) at the reference frame's brightness: ``(frame - offset) / gain``."""
    return torch.addcmul(-offset / gain, frame, 1.0 / gain)


def flicker_fits(clip: Clip, reference: Tensor, still: Tensor, indices: Optional[range] = None,
                 progress: Optional[Callable[[int], None]] = None) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
    """``(index, frame, gain, offset)`` for the frames of ``clip`` in ``indices`` (default all), with the
    :func:`fit_gains` that :func:`deflicker` them (applied by the caller, to what it needs)."""
    for index, frame in clip.frames(indices if indices is not None else range(clip.count)):
        gain, offset = fit_gains(frame, reference, still)
        yield index, frame, gain, offset
        if progress is not None:
            progress(index)


def motion_score(clip: Clip, reference: Tensor, still: Tensor, progress=None) -> Tensor:
    """``[H, W]``: mean absolute step of the deflickered luma between consecutive frames, 3x3 averaged."""
    total, previous = torch.zeros(clip.height, clip.width), None
    for _, frame, gain, offset in flicker_fits(clip, reference, still, progress=progress):
        luma = luminance(frame, gain, offset)
        if previous is not None:
            total += previous.sub_(luma).abs_()
        previous = luma
    score = total / (clip.count - 1)
    return F.avg_pool2d(score[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]


def region_from_score(score: Tensor, threshold: float, speckle: int) -> Tensor:
    """``[H, W]`` bool: ``score > threshold``, opened (specks out) and closed (pinholes in) by ``speckle`` px,
    with the still patches it encloses filled up to :data:`FILLED_HOLE_SHARE` of the frame."""
    region = score > threshold
    region = dilate(erode(region, speckle), speckle)
    return fill_small_holes(erode(dilate(region, speckle), speckle), FILLED_HOLE_SHARE)


def fill_small_holes(region: Tensor, share: float) -> Tensor:
    """``[H, W]`` bool ``region`` with every 4-connected patch outside it that touches no edge of the frame
    and covers at most ``share`` of it filled in. Dark or plain spots inside foliage or water barely change
    from frame to frame; left out, each would be a frozen hole with a hard edge inside the moving part."""
    from scipy import ndimage  # a dependency of scikit-learn, which the pack requires

    labels, count = ndimage.label(~region.numpy())
    if count == 0:
        return region
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes <= share * region.numel()
    small[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = False
    small[0] = False
    return region | torch.from_numpy(small[labels])


def check_region(mask: Tensor, height: int, width: int) -> Tensor:
    """``[H, W]`` bool region (> 0.5) of a MASK ``[H, W]`` or ``[1, H, W]`` the size of the clip."""
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise InputError("mask", f"expected one [H, W] mask, got shape {tuple(mask.shape)}")
    require_finite(mask, "mask", "a mask")
    if tuple(mask.shape) != (height, width):
        raise InputError(
            "mask",
            f"is {mask.shape[1]}x{mask.shape[0]} but the clip is {width}x{height}; paint it on a frame of the clip",
        )
    region = mask.cpu() > 0.5
    if not region.any():
        raise InputError("mask", "is empty (no value above 0.5): paint what may move, or leave the mask out")
    if region.all():
        raise InputError("mask", "covers the whole frame: a loop needs a still part; paint only what may move")
    return region


@dataclass(frozen=True)
class ClipRegion:
    """What every method needs: the reference frame ``[H, W, C]``, the moving region ``[H, W]`` bool,
    and its motion score ``[H, W]`` (mean absolute step per frame)."""

    reference: Tensor
    region: Tensor
    score: Tensor


def find_region(clip: Clip, reference_index: int, mask: Optional[Tensor] = None,
                threshold: float = DEFAULT_THRESHOLD, speckle: int = DEFAULT_SPECKLE,
                progress: Optional[Callable[[int], None]] = None) -> ClipRegion:
    """The reference frame and the region of ``clip`` (given by ``mask`` or derived from its motion).

    Refuses (naming ``threshold``, ``mask`` or the clip) a clip where nothing moves above ``threshold``.
    """
    if not threshold > 0:
        raise InputError("threshold", f"must be above 0, got {threshold}")
    if speckle < 0:
        raise InputError("speckle", f"must be 0 or more, got {speckle}")
    reference = clip_frame(clip, reference_index)
    given = None if mask is None else check_region(mask, clip.height, clip.width)
    still = ~given if given is not None else torch.ones(clip.height, clip.width, dtype=torch.bool)
    score = motion_score(clip, reference, still, progress)
    region = given if given is not None else region_from_score(score, threshold, speckle)
    if not region.any():
        raise InputError(
            clip.name,
            f"nothing moves: no part of the clip changes by more than threshold {threshold:g} per frame on "
            f"average (the largest change is {float(score.max()):.4f}); lower threshold or give a mask",
        )
    if given is None and region.all():
        raise InputError("threshold", "every pixel moves above it: raise threshold, or give a mask")
    inside = float(score[region].mean())
    if inside < threshold:
        raise InputError(
            clip.name,
            f"nothing moves inside the mask: its mean change is {inside:.4f} per frame, under threshold "
            f"{threshold:g}; check the mask, or lower threshold",
        )
    return ClipRegion(reference, region, score)


# ---------------------------------------------------------------- eulerian: the average flow


def _grey8(frame: Tensor, gain: Tensor, offset: Tensor):
    """``[h, w]`` uint8 numpy luma of a deflickered frame (or crop), for OpenCV."""
    return luminance(frame, gain, offset).mul_(255.0).clamp_(0.0, 255.0).round_().to(torch.uint8).numpy()


def flow_pairs(count: int, most: int) -> set[int]:
    """Frames ``t`` whose step to ``t + 1`` is measured: all ``count - 1``, or ``most`` spread evenly over the clip."""
    steps = count - 1
    if steps <= most:
        return set(range(steps))
    return {round(i * (steps - 1) / (most - 1)) for i in range(most)}


def average_flow(clip: Clip, found: ClipRegion, progress: Optional[Callable[[int], None]] = None) -> Tensor:
    """``[2, H, W]`` float32 velocity (px/frame, x right, y down): the mean over the clip of the dense
    optical flow between consecutive deflickered frames (DIS, Kroeger et al. 2016), zero outside the region.

    At most :data:`FLOW_PAIRS` steps are measured, spread evenly over the clip. Flow is measured inside
    the region's box plus :data:`FLOW_MARGIN` px, on one CPU thread (deterministic), refined down to a
    level of about :data:`FLOW_LEVEL_PX` px a side (full resolution for small regions).
    """
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # deterministic; restored for whatever else uses OpenCV in this process
    try:
        return _measure_flow(cv2, clip, found, progress)
    finally:
        cv2.setNumThreads(threads)


def _measure_flow(cv2, clip: Clip, found: ClipRegion, progress) -> Tensor:
    """:func:`average_flow` with OpenCV (the module ``cv2``) already set to one thread."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    rows, cols = bounding_box(found.region, FLOW_MARGIN)
    side = max(rows.stop - rows.start, cols.stop - cols.start)
    dis.setFinestScale(max(0, round(math.log2(side / FLOW_LEVEL_PX))))
    pairs = flow_pairs(clip.count, FLOW_PAIRS)
    total, previous = None, None
    for index, frame, gain, offset in flicker_fits(clip, found.reference, ~found.region, progress=progress):
        if index not in pairs and index - 1 not in pairs:
            continue
        grey = _grey8(frame[rows, cols], gain, offset)
        if index - 1 in pairs:
            step = torch.from_numpy(dis.calc(previous, grey, None))  # [h, w, 2]
            total = step if total is None else total.add_(step)
        previous = grey
    flow = torch.zeros(2, clip.height, clip.width)
    flow[:, rows, cols] = (total / len(pairs)).permute(2, 0, 1)
    return flow * found.region


# ---------------------------------------------------------------- loop: the cheapest span


def region_features(crop: Tensor, region: Tensor, factor: int) -> Tensor:
    """``[F]`` the ``region [h, w]`` pixels of a frame's crop ``[h, w, C]`` to the region's box, averaged
    over ``factor x factor`` blocks (those at least half inside the region)."""
    inside = region.float()[None, None]
    crop = crop.permute(2, 0, 1)[None]  # [1, C, h, w]
    blocks = F.avg_pool2d(crop * inside, factor, ceil_mode=True)
    share = F.avg_pool2d(inside, factor, ceil_mode=True)
    keep = share[0, 0] >= 0.5
    if not keep.any():  # a region thinner than a block: every block it touches
        keep = share[0, 0] > 0
    return (blocks / share.clamp(min=1e-6))[0][:, keep].flatten()


def frame_distances(features: Tensor) -> Tensor:
    """``[N, N]``: mean squared difference between the feature vectors ``[N, F]`` of every two frames."""
    f = features.double()
    squares = f.square().sum(1)
    d = squares[:, None] + squares[None, :] - 2.0 * f @ f.T
    return (d.clamp(min=0.0) / max(f.shape[1], 1)).float()


def span_costs(distances: Tensor, blend: int, periods: range) -> Tensor:
    """``[N, N + 1]`` seam cost of the loop of frames ``[s, s + p)`` at ``[s, p]``; ``inf`` where not allowed.

    ``cost(s, p) = mean over k in TAPS of D[s + k, s + p + k]``: the frame shown after the seam
    against the one that would naturally follow, and their neighbours. A span is allowed when every
    tap is inside the clip, the seam's ``blend`` frames before ``s`` exist, and ``p`` is in ``periods``.
    """
    n = distances.shape[0]
    costs = torch.full((n, n + 1), float("inf"))
    first = max(blend, -min(TAPS))
    for p in periods:
        starts = torch.arange(first, n - p - max(TAPS))
        if starts.numel() == 0 or p < 1:
            continue
        costs[starts, p] = torch.stack([distances[starts + k, starts + p + k] for k in TAPS]).mean(0)
    return costs


@dataclass(frozen=True)
class LoopSpan:
    """Part ``j`` of the region loops frames ``starts[j] .. starts[j] + period - 1`` of the clip; ``cost``:
    the seam's (:func:`span_costs`), averaged over the parts by their share of the region's features."""

    starts: tuple[int, ...]
    period: int
    cost: float

    @property
    def start(self) -> int:
        return min(self.starts)


def _windowed_minima(costs: Tensor, spread: int) -> tuple[Tensor, Tensor]:
    """``(minima, where)`` ``[P, N]``: each row's minimum over ``[a, a + spread]``, and its index."""
    padded = F.pad(costs, (0, spread), value=float("inf"))
    minima, offsets = padded.unfold(1, spread + 1, 1).min(dim=-1)
    return minima, offsets + torch.arange(costs.shape[1])


def choose_span(distances: list[Tensor], weights: list[float], blend: int, frames: int,
                spread: int = 0) -> LoopSpan:
    """The cheapest loop: one period for every part of the region, of ``frames`` frames or (``frames``
    0) of any length from half the clip up, and a start per part (``distances[j]`` ``[N, N]``, weight
    ``weights[j]``), the starts at most ``spread`` frames apart (0: one start for the whole region)."""
    n = distances[0].shape[0]
    longest = n - max(blend, -min(TAPS)) - max(TAPS)
    if frames < 0 or frames > longest or 0 < frames <= blend:
        raise InputError(
            "frames",
            f"is {frames}, but this clip of {n} frames holds loops of {blend + 1}..{longest} frames with a "
            f"blend of {blend} (0 = the best loop of at least half the clip); use a longer clip for longer loops",
        )
    periods = range(frames, frames + 1) if frames else range(max(n // 2, blend + 1), longest + 1)
    costs = torch.stack([span_costs(d, blend, periods) for d in distances])  # [P, N, N + 1]
    share = torch.tensor(weights, dtype=torch.float32)[:, None] / sum(weights)
    best = LoopSpan((0,), 0, float("inf"))
    for p in periods:
        minima, where = _windowed_minima(costs[:, :, p], spread)
        totals = (share * minima).sum(0)
        a = int(torch.argmin(totals))  # first minimum: deterministic
        if float(totals[a]) < best.cost:
            best = LoopSpan(tuple(int(s) for s in where[:, a]), p, float(totals[a]))
    if not best.cost < float("inf"):
        raise InputError(
            "blend", f"is {blend}, too long for a loop of at least half of this clip of {n} frames; lower it"
        )
    return best


def region_parts(region: Tensor) -> list[Tensor]:
    """The region's connected parts ``[H, W]`` bool (8-connected, :func:`.drawn_motion.label_parts`), largest
    first; beyond :data:`MAX_PARTS` the smallest are merged into the last."""
    labels, _ = label_parts(region)
    sizes = torch.bincount(labels.flatten())[1:]
    order = (torch.argsort(sizes, descending=True, stable=True) + 1).tolist()
    parts = [labels == label for label in order[:MAX_PARTS]]
    for label in order[MAX_PARTS:]:
        parts[-1] |= labels == label
    return parts


@dataclass(frozen=True)
class _Part:
    """One part of the region: its bounding box, its pixels there ``[h, w]`` bool, and its feature block size."""

    box: tuple[slice, slice]
    inside: Tensor
    factor: int


def _parts(region: Tensor, per_part: bool) -> list[_Part]:
    found = []
    for part in region_parts(region) if per_part else [region]:
        box = bounding_box(part)
        side = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
        found.append(_Part(box, part[box], max(1, -(-side // FEATURE_SIDE))))
    return found


def seam_span(clip: Clip, found: ClipRegion, blend: int, frames: int, spread: int = MAX_SPREAD,
              progress=None) -> LoopSpan:
    """The loop of ``clip`` (see :func:`choose_span`), from the deflickered features of each part of the
    region (of the whole region when ``spread`` is 0)."""
    if blend < 0:
        raise InputError("blend", f"must be 0 or more, got {blend}")
    parts = _parts(found.region, spread > 0)
    features = [[] for _ in parts]
    for _, frame, gain, offset in flicker_fits(clip, found.reference, ~found.region, progress=progress):
        for part, kept in zip(parts, features):
            kept.append(region_features(deflicker(frame[part.box], gain, offset), part.inside, part.factor))
    stacked = [torch.stack(kept) for kept in features]
    return choose_span([frame_distances(f) for f in stacked], [f.shape[1] for f in stacked], blend, frames, spread)


def switch_weights(leaving: list[Tensor], arriving: list[Tensor], radius: int = SWITCH_RADIUS) -> Tensor:
    """``[B, h, w]``: weight of ``arriving[i]`` against ``leaving[i]`` (crops ``[h, w, C]``) in the seam's
    window of ``B`` frames.

    Each pixel switches once, at the window frame where the two passes differ least (differences
    averaged over ``radius`` px, so neighbours switch together), and the switching front is feathered
    over ``radius`` px. Unlike a crossfade, no frame shows two half-weight copies of moving leaves or
    waves (double exposure); the seam falls, pixel by pixel, where the passes already agree.
    """
    differences = torch.stack([(a - b).abs().mean(-1) for a, b in zip(leaving, arriving)])  # [B, h, w]
    switch = _box_mean(differences, radius).argmin(0)  # the first minimum: deterministic
    switched = (torch.arange(len(leaving))[:, None, None] >= switch).float()
    return _box_mean(switched, radius)


def _box_mean(maps: Tensor, radius: int) -> Tensor:
    """``[B, h, w]`` maps averaged over ``(2 radius + 1)^2`` boxes (cut at the edges)."""
    return F.avg_pool2d(maps[:, None], 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)[:, 0]


def _switched_part(kept: dict, start: int, period: int, blend: int) -> list[Tensor]:
    """A part's crops for the last ``blend`` output frames: frames ``start + period - blend + i`` switched
    into frames ``start - blend + i`` (:func:`switch_weights`), which lead into frame ``start``."""
    leaving = [kept.pop(start + period - blend + i) for i in range(blend)]
    arriving = [kept.pop(start - blend + i) for i in range(blend)]
    weights = switch_weights(leaving, arriving)
    return [torch.lerp(a, b, w[..., None]) for a, b, w in zip(leaving, arriving, weights)]


def loop_chunks(clip: Clip, found: ClipRegion, span: LoopSpan, blend: int, chunk: int = 8,
                out: Optional[Tensor] = None, progress=None) -> Iterator[Tensor]:
    """Yield the loop's ``span.period`` frames as ``[k, H, W, C]`` chunks (views into ``out`` when given).

    Output frame ``k`` is the reference frame outside the region and, inside part ``j`` of it,
    deflickered frame ``s_j + k``; in the last ``blend`` frames each pixel switches over to frames
    ``s_j - blend + i`` (:func:`switch_weights`), which lead into the first (frame ``s_j``), so the
    last frame leads into the first like a natural step. Only the parts' boxes are computed; holds,
    per part, ``2 blend`` crops and those between its start and the latest start, and one chunk.
    """
    p, starts = span.period, span.starts
    parts = _parts(found.region, len(starts) > 1)
    reference, latest = found.reference, max(starts)
    held = [{} for _ in parts]
    switched = [[] for _ in parts]
    batch, filled, k = None, 0, 0
    needed = range(min(starts) - blend, latest + p)
    for index, frame, gain, offset in flicker_fits(clip, reference, ~found.region, needed):
        for part, start, kept in zip(parts, starts, held):
            if start - blend <= index < start + p:
                kept[index] = deflicker(frame[part.box], gain, offset)
        # The seam's window needs both passes whole: its frames wait for the clip's last frame.
        ready = p if index == needed.stop - 1 else min(index - latest + 1, p - blend)
        while k < ready:
            if batch is None:
                size = min(chunk, p - k)
                batch = out[k:k + size] if out is not None else torch.empty((size, *reference.shape))
                batch.copy_(reference.expand_as(batch))
            for j, (part, start, kept) in enumerate(zip(parts, starts, held)):
                if k < p - blend:
                    crop = kept.pop(start + k)
                else:
                    switched[j] = switched[j] or _switched_part(kept, start, p, blend)
                    crop = switched[j][k - (p - blend)]
                target = batch[filled][part.box]
                target.copy_(torch.where(part.inside[..., None], crop.clamp(0.0, 1.0), target))
            filled, k = filled + 1, k + 1
            if progress is not None:
                progress(k - 1)
            if filled == batch.shape[0]:
                yield batch
                batch, filled = None, 0


# ---------------------------------------------------------------- entry points


def _pass_progress(progress: Optional[ProgressFn], count: int, passes: int):
    """``for_pass(i)``: a per-frame callback of pass ``i`` that reports ``progress(i * count + index + 1, total)``."""
    total = passes * count

    def for_pass(i: int) -> Optional[Callable[[int], None]]:
        if progress is None:
            return None
        return lambda index: progress(min(i * count + index + 1, total), total)
    return for_pass


def clip_flow(clip: Clip, reference: int = 0, mask: Optional[Tensor] = None, threshold: float = DEFAULT_THRESHOLD,
              speckle: int = DEFAULT_SPECKLE, progress: Optional[ProgressFn] = None) -> tuple[Tensor, ClipRegion]:
    """``(flow [2, H, W], ClipRegion)``: the ``eulerian`` method's average motion of ``clip``'s region."""
    for_pass = _pass_progress(progress, clip.count, 2)
    found = find_region(clip, reference, mask, threshold, speckle, for_pass(0))
    flow = average_flow(clip, found, for_pass(1))
    if not bool((flow != 0).any()):
        raise InputError(clip.name, "nothing moves: the optical flow inside the region is zero")
    return flow, found


def loop_clip(clip: Clip, reference: int = 0, mask: Optional[Tensor] = None, frames: int = 0,
              blend: int = DEFAULT_BLEND, threshold: float = DEFAULT_THRESHOLD, speckle: int = DEFAULT_SPECKLE,
              progress: Optional[ProgressFn] = None, spread: int = MAX_SPREAD,
              ) -> tuple[Callable[..., Iterator[Tensor]], LoopSpan, ClipRegion]:
    """The ``loop`` method: ``(chunks, span, region)``; ``chunks(chunk=8, out=None)`` yields the loop's
    frames (:func:`loop_chunks`), after the region and span are known (every check made)."""
    for_pass = _pass_progress(progress, clip.count, 3)
    found = find_region(clip, reference, mask, threshold, speckle, for_pass(0))
    span = seam_span(clip, found, blend, frames, spread, for_pass(1))

    def chunks(chunk: int = 8, out: Optional[Tensor] = None) -> Iterator[Tensor]:
        return loop_chunks(clip, found, span, blend, chunk, out, for_pass(2))

    return chunks, span, found
