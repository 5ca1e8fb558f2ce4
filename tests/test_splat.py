"""Splatting: conservation, dropped sources, and the CUDA kernel against the torch one."""

import pytest
import torch

from text2cinemagraph.kernels import splat_torch_
from text2cinemagraph.kernels import splat_cuda


def random_sources(count, height, width, seed, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(count, generator=generator) * (width + 4) - 2  # some outside the frame
    y = torch.rand(count, generator=generator) * (height + 4) - 2
    values = torch.rand(4, count, generator=generator)
    scale = torch.rand(count, generator=generator)
    return [t.to(device) for t in (values, x, y, scale)]


def test_weight_is_conserved_for_sources_inside_the_frame():
    height, width = 20, 30
    values, x, y, scale = random_sources(500, height, width, 0)
    accum = torch.zeros(4, height * width)
    splat_torch_(accum, values, x, y, scale, width)
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    expected = (values * scale * inside).sum(dim=1)
    assert torch.allclose(accum.sum(dim=1), expected, rtol=1e-5)


def test_integer_positions_land_on_one_pixel_exactly():
    accum = torch.zeros(2, 4 * 5)
    values = torch.tensor([[0.3, 0.7], [1.0, 1.0]])
    splat_torch_(accum, values, torch.tensor([1.0, 4.0]), torch.tensor([2.0, 3.0]), torch.ones(2), 5)
    assert accum[0, 2 * 5 + 1] == 0.3 and accum[0, 3 * 5 + 4] == 0.7
    assert int((accum[1] != 0).sum()) == 2


@pytest.mark.skipif(not (torch.cuda.is_available() and splat_cuda.available()), reason="needs a CUDA GPU and CuPy")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cuda_kernel_equals_torch(seed):
    height, width = 64, 96
    values, x, y, scale = random_sources(20000, height, width, seed)
    expected = splat_torch_(torch.zeros(4, height * width), values, x, y, scale, width)
    cuda = [t.cuda() for t in (values, x, y, scale)]
    result = splat_cuda.splat_cuda_(torch.zeros(4, height * width, device="cuda"), *cuda, width)
    assert torch.allclose(result.cpu(), expected, rtol=1e-5, atol=1e-5)
