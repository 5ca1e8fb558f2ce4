"""The splatting of :mod:`.splat` as a CuPy CUDA kernel (one thread a source).

CuPy is optional (``pip install text2cinemagraph[cuda]``) and is imported only
when a CUDA tensor is splatted, never at import time. The kernel is ours;
Niklaus's public softmax-splatting kernel is licensed for academic use only.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

KERNEL_SOURCE = r"""
extern "C" __global__ void t2c_splat(
    const float* __restrict__ values,  // [C, M]
    const float* __restrict__ xs,      // [M]
    const float* __restrict__ ys,      // [M]
    const float* __restrict__ scale,   // [M]
    float* __restrict__ accum,         // [C, H * W]
    const int channels, const long long sources, const int height, const int width)
{
    const long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= sources) return;
    const float x = xs[m];
    const float y = ys[m];
    const float s = scale[m];
    if (!(x >= 0.0f && x <= (float)(width - 1) && y >= 0.0f && y <= (float)(height - 1))) return;
    const float x0f = floorf(x);
    const float y0f = floorf(y);
    const float fx = x - x0f;
    const float fy = y - y0f;
    const float gx = 1.0f - fx;
    const float gy = 1.0f - fy;
    const int x0 = (int)x0f;
    const int y0 = (int)y0f;
    const float w[4] = {gx * gy * s, fx * gy * s, gx * fy * s, fx * fy * s};
    const int cx[4] = {x0, x0 + 1, x0, x0 + 1};
    const int cy[4] = {y0, y0, y0 + 1, y0 + 1};
    const long long plane = (long long)height * width;
    for (int k = 0; k < 4; ++k) {
        if (cx[k] >= width || cy[k] >= height || w[k] == 0.0f) continue;
        const long long q = (long long)cy[k] * width + cx[k];
        for (int c = 0; c < channels; ++c) {
            atomicAdd(accum + c * plane + q, values[c * sources + m] * w[k]);
        }
    }
}
"""

THREADS = 256


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True when CuPy imports and sees a CUDA device."""
    try:
        import cupy
    except Exception:
        return False
    try:
        return bool(cupy.is_available())
    except Exception:
        return False


@functools.lru_cache(maxsize=None)
def _kernel(device_index: int):
    import cupy

    with cupy.cuda.Device(device_index):
        return cupy.RawKernel(KERNEL_SOURCE, "t2c_splat")


def splat_cuda_(accum: Tensor, values: Tensor, x: Tensor, y: Tensor, scale: Tensor, width: int) -> Tensor:
    """Same contract as :func:`.splat.splat_torch_`, for CUDA tensors."""
    import cupy

    channels, pixels = accum.shape
    if accum.dtype != torch.float32 or not accum.is_contiguous():
        raise ValueError("accum must be a contiguous float32 CUDA tensor")
    sources = x.shape[0]
    if sources == 0:
        return accum
    values = values.to(torch.float32).contiguous()
    x = x.to(torch.float32).contiguous()
    y = y.to(torch.float32).contiguous()
    scale = scale.to(torch.float32).contiguous()
    device = accum.device.index or 0
    kernel = _kernel(device)
    blocks = (sources + THREADS - 1) // THREADS
    stream = torch.cuda.current_stream(accum.device).cuda_stream
    with cupy.cuda.Device(device), cupy.cuda.ExternalStream(stream):
        kernel(
            (blocks,),
            (THREADS,),
            (
                cupy.asarray(values),
                cupy.asarray(x),
                cupy.asarray(y),
                cupy.asarray(scale),
                cupy.asarray(accum),
                cupy.int32(channels),
                cupy.int64(sources),
                cupy.int32(pixels // width),
                cupy.int32(width),
            ),
        )
    return accum
