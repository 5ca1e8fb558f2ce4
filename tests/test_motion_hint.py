"""TwinPromptBuilder's motion_hint carries the prompt's direction and region kind into FlowPredictor
(a custom type: frontend 1.58 cannot load a combo output linked into a combo widget)."""

from __future__ import annotations

import pytest
import torch

from text2cinemagraph.kernels.errors import InputError
from text2cinemagraph.nodes.motion import FlowPredictor
from text2cinemagraph.nodes.prompts import TwinPromptBuilder
from text2cinemagraph.nodes.stages.directions import MotionHint, apply_motion_hint


def flow_of(hint, direction="auto", region_kind="generic") -> torch.Tensor:
    image = torch.rand(1, 48, 64, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 48, 64)
    mask[:, 10:40, 8:56] = 1.0
    flow, _ = FlowPredictor().predict(image, mask, "procedural", direction, 0.5, region_kind, 3, motion_hint=hint)
    return flow


def test_the_prompts_direction_reaches_the_flow():
    *_, direction, hint = TwinPromptBuilder().build("a waterfall between rocks, oil painting, in upwards direction")
    assert direction == "upwards" and hint == MotionHint("upwards", "waterfall")
    flow = flow_of(hint)
    assert torch.equal(flow, flow_of(None, direction="upwards", region_kind="waterfall"))
    inside = flow[:, 20:30, 20:44]
    assert (inside[1] < 0).all()  # upwards = negative y in image coordinates


def test_the_prompts_region_kind_decides_auto():
    *_, hint = TwinPromptBuilder().build("a waterfall between rocks, oil painting")
    assert hint == MotionHint("auto", "waterfall")
    assert torch.equal(flow_of(hint), flow_of(None, region_kind="waterfall"))  # waterfalls fall
    assert (flow_of(hint)[1, 20:30, 20:44] > 0).all()


def test_widgets_set_by_hand_win_over_the_hint():
    hint = MotionHint("upwards", "waterfall")
    assert apply_motion_hint(hint, "left to right", "clouds") == ("left to right", "clouds")
    assert apply_motion_hint(hint, " Auto ", "generic") == ("upwards", "waterfall")
    assert apply_motion_hint(None, "auto", "lake") == ("auto", "lake")


@pytest.mark.parametrize("hint", ["upwards", MotionHint("sideways", "river"), MotionHint("upwards", "lava")])
def test_a_bad_hint_names_the_input(hint):
    with pytest.raises(InputError, match=r"^motion_hint: "):
        flow_of(hint)
