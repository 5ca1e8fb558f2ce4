"""Motion directions: the paper's 12 phrases, angles, and ``auto`` per region kind.

Angles are in degrees, counter-clockwise, 0 = rightwards, 90 = upwards (as in
the paper's direction table); in image coordinates (y down) the unit vector is
``(cos a, -sin a)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from ...kernels.errors import InputError

# Phrase -> (low, high) sector in degrees, from the paper's direction table
# (see shared/reference/text2cinemagraph-facts.md). A low above high wraps 360.
DIRECTION_SECTORS: dict[str, tuple[float, float]] = {
    "left to right": (350.0, 10.0),
    "left to right, upwards": (10.0, 45.0),
    "upwards, left to right": (45.0, 80.0),
    "upwards": (80.0, 100.0),
    "upwards, right to left": (100.0, 135.0),
    "right to left, upwards": (135.0, 170.0),
    "right to left": (170.0, 190.0),
    "right to left, downwards": (190.0, 225.0),
    "downwards, right to left": (225.0, 260.0),
    "downwards": (260.0, 280.0),
    "downwards, left to right": (280.0, 315.0),
    "left to right, downwards": (315.0, 350.0),
}

REGION_KINDS = ("generic", "waterfall", "river", "stream", "ocean/sea", "lake", "clouds", "smoke", "fire")

# What ``auto`` means for each kind: a phrase, a choice of phrases drawn by the
# seed, or "long axis" (along the mask's principal axis).
_AUTO_DIRECTION: dict[str, tuple[str, ...]] = {
    "waterfall": ("downwards",),
    "ocean/sea": ("downwards",),  # waves roll towards the viewer
    "lake": ("left to right", "right to left"),  # a gentle drift
    "clouds": ("left to right", "right to left"),
    "smoke": ("upwards",),
    "fire": ("upwards",),
    "river": ("long axis",),
    "stream": ("long axis",),
    "generic": ("long axis",),
}

# A sampled angle keeps this fraction of the sector's width away from its edges,
# so that the motion reads unambiguously as the phrase.
_SECTOR_INSET = 0.2

_ANGLE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:°|deg|degrees?)?\s*$")


@dataclass(frozen=True)
class RegionDirection:
    """One entry of a direction spec: an optional region kind and a direction."""

    kind: str | None
    direction: str


@dataclass(frozen=True)
class MotionHint:
    """What a prompt says about motion, for FlowPredictor's ``motion_hint`` input.

    A custom type rather than a combo output: frontend 1.58 cannot load a graph
    whose list-typed (legacy combo) output is linked into a combo widget.
    """

    direction: str  # a direction phrase, an angle, or "auto"
    region_kind: str  # one of REGION_KINDS


def apply_motion_hint(hint: object, direction: str, region_kind: str) -> tuple[str, str]:
    """The ``(direction, region_kind)`` FlowPredictor uses.

    The widgets' own values win; left at their defaults (``auto`` / ``generic``)
    they defer to a connected hint.
    """
    if hint is None:
        return direction, region_kind
    if not isinstance(hint, MotionHint) or hint.region_kind not in REGION_KINDS:
        raise InputError("motion_hint", f"expects TwinPromptBuilder's motion_hint output, got {hint!r}")
    try:
        parse_direction_spec(hint.direction, 1)
    except InputError as error:
        raise InputError("motion_hint", f"carries an unusable direction ({error})") from error
    if normalize_phrase(direction) == "auto":
        direction = hint.direction
    if region_kind == "generic":
        region_kind = hint.region_kind
    return direction, region_kind


def normalize_phrase(text: str) -> str:
    """Lower-case, single spaces, ``in ... direction`` wrapper removed."""
    text = " ".join(text.strip().lower().split())
    text = re.sub(r"^in\s+", "", text)
    text = re.sub(r"\s+direction$", "", text)
    return re.sub(r"\s*,\s*", ", ", text)


def parse_direction_spec(spec: str, num_regions: int) -> list[RegionDirection]:
    """Split ``"river: left to right; waterfall: downwards"`` into one entry a region.

    A single entry applies to every region; otherwise there must be exactly one
    entry per mask in the batch. ``kind:`` prefixes are optional.
    """
    entries = [part for part in (p.strip() for p in spec.split(";")) if part]
    if not entries:
        entries = ["auto"]
    if len(entries) == 1:
        entries = entries * num_regions
    if len(entries) != num_regions:
        raise InputError(
            "direction",
            f"gives {len(entries)} directions separated by ';' but the mask batch has {num_regions} masks; "
            "give one direction for all masks or one per mask, e.g. 'river: left to right; waterfall: downwards'",
        )
    parsed = []
    for entry in entries:
        kind = None
        if ":" in entry:
            head, entry = (s.strip() for s in entry.split(":", 1))
            kind = _parse_kind(head)
        direction = normalize_phrase(entry)
        _check_direction(direction)
        parsed.append(RegionDirection(kind, direction))
    return parsed


def _parse_kind(text: str) -> str:
    key = text.strip().lower()
    aliases = {"ocean": "ocean/sea", "sea": "ocean/sea", "cloud": "clouds", "waterfalls": "waterfall", "rivers": "river"}
    key = aliases.get(key, key)
    if key not in REGION_KINDS:
        raise InputError("direction", f"unknown region kind {text!r}; valid kinds: {', '.join(REGION_KINDS)}")
    return key


def _check_direction(direction: str) -> None:
    if direction == "auto" or direction in DIRECTION_SECTORS or _ANGLE.match(direction):
        return
    raise InputError(
        "direction",
        f"unknown direction {direction!r}; use 'auto', an angle in degrees (0 = rightwards, 90 = upwards) "
        f"or one of: {'; '.join(DIRECTION_SECTORS)}",
    )


def sector_angle(phrase: str, generator: torch.Generator) -> float:
    """A seeded angle inside the phrase's sector (inset from its edges)."""
    low, high = DIRECTION_SECTORS[phrase]
    width = (high - low) % 360.0
    u = float(torch.rand((), generator=generator))
    inner = width * (1.0 - 2.0 * _SECTOR_INSET)
    return (low + width * _SECTOR_INSET + u * inner) % 360.0


def long_axis_angle(mask: Tensor, generator: torch.Generator) -> float:
    """Angle of the mask's principal axis; mostly vertical axes point down,
    mostly horizontal ones point left or right as the seed decides."""
    ys, xs = torch.nonzero(mask > 0.5, as_tuple=True)
    coords = torch.stack((xs.double(), ys.double()))
    coords = coords - coords.mean(dim=1, keepdim=True)
    cov = coords @ coords.T / max(coords.shape[1], 1)
    _, vectors = torch.linalg.eigh(cov)
    vx, vy = float(vectors[0, 1]), float(vectors[1, 1])
    if abs(vy) > abs(vx):
        if vy < 0:
            vx, vy = -vx, -vy  # point down the image
    else:
        flip = bool(torch.rand((), generator=generator) < 0.5)
        if (vx < 0) != flip:
            vx, vy = -vx, -vy
    return math.degrees(math.atan2(-vy, vx)) % 360.0


def resolve_angle(direction: str, kind: str, mask: Tensor, generator: torch.Generator) -> float:
    """The angle in degrees for one region.

    Args:
        direction: a normalised phrase, ``auto`` or an angle in degrees.
        kind: one of :data:`REGION_KINDS` (used by ``auto``).
        mask: ``[H, W]`` the region (used by long-axis directions).
        generator: seeded; the same seed gives the same angle.
    """
    match = _ANGLE.match(direction)
    if match:
        return float(match.group(1)) % 360.0
    if direction == "auto":
        choices = _AUTO_DIRECTION[kind]
        pick = int(torch.randint(len(choices), (), generator=generator)) if len(choices) > 1 else 0
        direction = choices[pick]
        if direction == "long axis":
            return long_axis_angle(mask, generator)
    return sector_angle(direction, generator)


def angle_to_phrase(angle: float) -> str:
    """The phrase whose sector contains ``angle`` (degrees)."""
    angle %= 360.0
    for phrase, (low, high) in DIRECTION_SECTORS.items():
        if (angle - low) % 360.0 < (high - low) % 360.0:
            return phrase
    return "left to right"
