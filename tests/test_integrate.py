"""Euler integration: the O(N) pass against per-frame re-integration, and pixels leaving the frame."""

import pytest
import torch
import torch.nn.functional as F

from text2cinemagraph.kernels import InputError, euler_integrate


def random_smooth_flow(seed: int, height: int = 40, width: int = 48, speed: float = 1.5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn((1, 2, 5, 6), generator=generator)
    flow = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0] * speed
    blob = F.interpolate(torch.rand((1, 1, 4, 4), generator=generator), size=(height, width), mode="bilinear")[0, 0]
    return flow * (blob > 0.5)


def reintegrate_dense(flow: torch.Tensor, steps: int) -> torch.Tensor:
    """Displacement of every pixel after ``steps`` Euler steps, recomputed from scratch with
    ``grid_sample`` on the whole image (an independent implementation of the same formula)."""
    _, height, width = flow.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    disp = torch.zeros((2, height, width), dtype=torch.float64)
    field = flow.double()[None]
    for _ in range(steps):
        x, y = xs + disp[0], ys + disp[1]
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        grid = torch.stack((x / (width - 1) * 2 - 1, y / (height - 1) * 2 - 1), dim=-1)[None]
        velocity = F.grid_sample(field, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        disp = disp + velocity * inside
    return disp.reshape(2, -1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_pass_equals_per_frame_reintegration(seed):
    flow = random_smooth_flow(seed)
    frames = 12
    motion = euler_integrate(flow, frames)
    assert motion.forward.shape == (frames + 1, 2, motion.sources.numel())
    assert motion.sources.numel() == int((flow != 0).any(0).sum())
    for n in range(frames + 1):
        expected_forward = reintegrate_dense(flow, n)[:, motion.sources].float()
        expected_backward = reintegrate_dense(-flow, frames - n)[:, motion.sources].float()
        assert torch.allclose(motion.forward[n], expected_forward, atol=2e-3), n
        assert torch.allclose(motion.backward[n], expected_backward, atol=2e-3), n


def test_endpoints_are_zero_displacement():
    motion = euler_integrate(random_smooth_flow(3), 9)
    assert torch.equal(motion.forward[0], torch.zeros_like(motion.forward[0]))
    assert torch.equal(motion.backward[-1], torch.zeros_like(motion.backward[-1]))


def test_pixels_that_leave_the_frame_stop_outside_it():
    height, width = 8, 16
    flow = torch.zeros(2, height, width)
    flow[0, 2:6, 4:] = 2.0  # rightwards, running off the right edge
    motion = euler_integrate(flow, 10)
    x0, _ = motion.source_positions()
    x = x0 + motion.forward[:, 0]  # [N+1, M]
    start = (x0 == width - 2).nonzero()[0, 0]
    assert x[1, start] == width  # left the frame after one step ...
    assert torch.equal(x[1:, start], torch.full((10,), float(width)))  # ... and stays where it left
    assert bool((x[-1] > width - 1).all())  # after 10 steps of 2 px every source has left


def test_rejects_bad_flow_and_frames():
    flow = random_smooth_flow(0)
    with pytest.raises(InputError) as error:
        euler_integrate(flow, 0)
    assert error.value.input_name == "frames"
    with pytest.raises(InputError, match="frames"):
        euler_integrate(flow, -3)
    for stored in (range(0, 6), range(2, 4, 2), range(-1, 3)):  # beyond frame 4; not consecutive; before 0
        with pytest.raises(InputError, match="stored frames"):
            euler_integrate(flow, 4, frames=stored)
    broken = flow.clone()
    broken[0, 5, 5] = float("nan")
    with pytest.raises(InputError) as error:
        euler_integrate(broken, 4)
    assert error.value.input_name == "flow" and "NaN" in str(error.value)


def test_trajectories_are_stored_as_int16_and_keep_every_exit():
    flow = random_smooth_flow(4, speed=2.5)
    frames = 16
    motion = euler_integrate(flow, frames)
    assert motion.forward_stored.dtype == torch.int16 and motion.quantum <= 2.0**-8
    assert motion.nbytes < 0.6 * (2 * 4 * (frames + 1) * 2 * motion.sources.numel())
    x0, y0 = motion.source_positions()
    height, width = flow.shape[1:]
    x, y = x0 + motion.forward[-1, 0], y0 + motion.forward[-1, 1]
    assert ((x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)).any()  # some pixels leave
    # Each exit as the float64 oracle sees it (clear of rounding) is kept by the stored int16 values.
    for n in range(frames + 1):
        exact = reintegrate_dense(flow, n)[:, motion.sources]
        ex, ey = x0.double() + exact[0], y0.double() + exact[1]
        clearly_out = (ex < -1e-3) | (ex > width - 1 + 1e-3) | (ey < -1e-3) | (ey > height - 1 + 1e-3)
        x, y = x0 + motion.forward[n, 0], y0 + motion.forward[n, 1]
        stored_out = (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)
        assert bool(stored_out[clearly_out].all()), n


def test_a_loop_integrated_in_parts_resumes_instead_of_starting_again():
    """Successive parts continue the forward pass and resume the backward pass from checkpoints:
    the same trajectories as one whole integration, for far fewer steps than integrating each anew."""
    from text2cinemagraph.kernels.integrate import LoopIntegrator

    flow = random_smooth_flow(3, speed=2.0)  # pixels leave the frame: frozen points must resume too

    def steps_per_part(frames: int, parts: list) -> list:
        whole, integrator, steps = euler_integrate(flow, frames), LoopIntegrator(flow, frames, parts), []
        for part in parts:
            reported = []
            motion = integrator.motion(part, progress=lambda done, total: reported.append((done, total)))
            assert reported[-1][0] == reported[-1][1]
            steps.append(reported[-1][1])
            assert torch.equal(motion.forward_stored, whole.forward_stored[part.start:part.stop])
            assert torch.equal(motion.backward_stored, whole.backward_stored[part.start:part.stop])
        again = integrator.motion(range(2, 4))  # out of order: starts again, same values
        assert torch.equal(again.backward_stored, whole.backward_stored[2:4])
        assert torch.equal(again.forward_stored, whole.forward_stored[2:4])
        return steps

    # Forward: 10, 10 and 9 steps, continuing. Backward: 29 for the first part (its frames 10..1 are
    # steps 20..29), then from the checkpoints saved on the way at steps 10 and 1: 9 and 8 steps.
    assert steps_per_part(30, [range(1, 11), range(11, 21), range(21, 30)]) == [10 + 29, 10 + 9, 9 + 8]
    # Parts too small for checkpoints (two would cost half a part): the backward pass starts again.
    assert steps_per_part(9, [range(1, 3), range(3, 5), range(5, 9)]) == [2 + 8, 2 + 6, 4 + 4]
