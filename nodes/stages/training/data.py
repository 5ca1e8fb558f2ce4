"""Training data in the layout of Holynski et al.'s Eulerian dataset.

One folder holds, per clip ``<name>``::

    <name>_input.jpg | .png                 the first frame (what the networks see)
    <name>_motion.npy | .safetensors | .pt | .pth
                                            the averaged ("Eulerian") flow, [2, H, W] or [H, W, 2], px/frame
    <name>_mask.png                         optional moving-region mask (white moves); by default the
                                            release's rule |F|^2 > mean(|F|^2) / 10
    <name>_gt/images/<i>.png                the clip's frames 0..N-1 (G_frame only)

and optionally a captions file of ``<name>: caption`` lines (G_flow's text).
The dataset's own ``_motion.pth`` files are LZ4-compressed pickles of numpy
arrays: they are read (with the ``lz4`` package) by an unpickler that builds
numpy arrays and nothing else.

Every sample is a random ``crop x crop`` window, flipped left-right half of
the time (the flow's x component changes sign), as in the release's loaders.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ....kernels.errors import InputError

IMAGE_SUFFIXES = ("_input.jpg", "_input.png", "_input.jpeg")
FLOW_SUFFIXES = ("_motion.npy", "_motion.safetensors", "_motion.pt", "_motion.pth")
MASK_RATIO = 10.0  # the release's 'average' mask rule
MAX_HINTS = 5  # training hints use 1..5 k-means centroids (SLR-SFS)
LZ4_MAGIC = b"\x04\x22\x4d\x18"
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


@dataclass(frozen=True)
class Clip:
    """Paths of one training clip."""

    name: str
    image: str
    flow: str
    mask: Optional[str]
    frames: Optional[str]


def find_clips(root: str, need_frames: bool = False) -> list[Clip]:
    """Every clip of ``root`` that has an input picture and a flow (and frames if needed)."""
    if not os.path.isdir(root):
        raise InputError("--data", f"no such folder: {root!r}")
    clips = []
    for entry in sorted(os.listdir(root)):
        suffix = next((s for s in IMAGE_SUFFIXES if entry.lower().endswith(s)), None)
        if suffix is None:
            continue
        name = entry[: -len(suffix)]
        flows = [os.path.join(root, name + s) for s in FLOW_SUFFIXES]
        flow = next((path for path in flows if os.path.isfile(path)), None)
        if flow is None:
            continue
        mask = os.path.join(root, name + "_mask.png")
        frames = os.path.join(root, name + "_gt", "images")
        has_frames = os.path.isdir(frames)
        if need_frames and not has_frames:
            continue
        clips.append(Clip(name, os.path.join(root, entry), flow, mask if os.path.isfile(mask) else None,
                          frames if has_frames else None))
    if not clips:
        wanted = "<name>_input.jpg, <name>_motion.npy" + (" and <name>_gt/images/<i>.png" if need_frames else "")
        raise InputError("--data", f"{root!r} holds no training clips; each clip needs {wanted}")
    return clips


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays are read")
        return super().find_class(module, name)


def _numpy_pickle(data: bytes) -> np.ndarray:
    if data.startswith(LZ4_MAGIC):
        try:
            import lz4.frame
        except ImportError as error:
            raise InputError("--data", "the dataset's _motion.pth files are LZ4-compressed: pip install lz4") from error
        data = lz4.frame.decompress(data)
    return np.asarray(_NumpyOnlyUnpickler(io.BytesIO(data)).load())


def load_flow(path: str) -> Tensor:
    """``[2, H, W]`` float32 flow from ``.npy``, ``.safetensors``, ``.pt`` or the dataset's ``.pth``."""
    lower = path.lower()
    if lower.endswith(".npy"):
        flow = torch.from_numpy(np.load(path, allow_pickle=False))
    elif lower.endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(path)
        flow = tensors.get("flow", next(iter(tensors.values())))
    else:
        with open(path, "rb") as handle:
            data = handle.read()
        if data.startswith(b"PK"):  # torch.save's zip format
            flow = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        else:
            flow = torch.from_numpy(_numpy_pickle(data))
        if isinstance(flow, dict):
            flow = flow.get("flow", next(iter(flow.values())))
    flow = torch.as_tensor(flow).float()
    while flow.ndim > 3 and flow.shape[0] == 1:
        flow = flow[0]
    if flow.ndim == 3 and flow.shape[-1] == 2 and flow.shape[0] != 2:
        flow = flow.permute(2, 0, 1)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise InputError("--data", f"{os.path.basename(path)}: expected a [2, H, W] flow, got {tuple(flow.shape)}")
    return flow.contiguous()


def load_rgb(path: str) -> Tensor:
    """``[3, H, W]`` in [-1, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1) * 2.0 - 1.0


def load_grey(path: str) -> Tensor:
    """``[1, H, W]`` 0/1 mask (> 0.5)."""
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return (torch.from_numpy(array) > 0.5).float()[None]


def average_rule_mask(flow: Tensor, ratio: float = MASK_RATIO) -> Tensor:
    """``[1, H, W]``: pixels whose squared speed exceeds the image mean over ``ratio`` (the release's rule)."""
    speed2 = (flow * flow).sum(dim=0)
    return (speed2 > speed2.mean() / ratio).float()[None]


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """``[2, h, w]`` resized to ``size`` with the components scaled along."""
    height, width = flow.shape[-2:]
    if (height, width) == tuple(size):
        return flow
    out = F.interpolate(flow[None], size=size, mode="bilinear", align_corners=False)[0]
    return out * torch.tensor([size[1] / width, size[0] / height]).view(2, 1, 1)


def kmeans(points: Tensor, k: int, generator: torch.Generator, iterations: int = 20) -> Tensor:
    """``[k, 2]`` centroids of ``points [M, 2]`` (Lloyd's algorithm from k random points)."""
    centres = points[torch.randperm(points.shape[0], generator=generator)[:k]].clone()
    for _ in range(iterations):
        labels = torch.cdist(points, centres).argmin(dim=1)
        for i in range(centres.shape[0]):
            members = points[labels == i]
            if members.numel():
                centres[i] = members.mean(dim=0)
    return centres


def flow_hint(flow: Tensor, mask: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``[2, H, W]`` dense direction hint from the flow at ``k`` k-means centroids of the mask.

    The flow sampled at each centroid is spread with a Gaussian of sigma
    ``H / k``, normalised by the summed weights and masked (SLR-SFS's hints, as
    the release trained the direction network on).
    """
    height, width = flow.shape[-2:]
    ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    if ys.numel() < max(5, k):
        return torch.zeros_like(flow)
    centres = kmeans(torch.stack((xs, ys), dim=1).float(), k, generator).long()
    grid_y, grid_x = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    sigma = height / k
    total = torch.zeros(2, height, width)
    weights = torch.zeros(1, height, width)
    for cx, cy in centres.tolist():
        weight = torch.exp(-((grid_x - cx) ** 2 + (grid_y - cy) ** 2) / sigma**2)[None]
        total += weight * flow[:, cy, cx].view(2, 1, 1)
        weights += weight
    return total / weights.clamp_min(1e-12) * mask


def random_crop_box(height: int, width: int, crop: int) -> tuple[int, int]:
    top = int(torch.randint(0, height - crop + 1, ()))
    left = int(torch.randint(0, width - crop + 1, ()))
    return top, left


def fit_for_crop(tensors: list[Tensor], flow_indices: tuple[int, ...], crop: int) -> list[Tensor]:
    """Upscale (keeping the aspect) when the pictures are smaller than the crop."""
    height, width = tensors[0].shape[-2:]
    if min(height, width) >= crop:
        return tensors
    scale = crop / min(height, width)
    size = (max(crop, round(height * scale)), max(crop, round(width * scale)))
    out = []
    for i, tensor in enumerate(tensors):
        if i in flow_indices:
            out.append(resize_flow(tensor, size))
        else:
            out.append(F.interpolate(tensor[None], size=size, mode="nearest" if tensor.shape[0] == 1 else "bilinear",
                                     align_corners=None if tensor.shape[0] == 1 else False)[0])
    return out


def crop_and_flip(tensors: list[Tensor], flow_indices: tuple[int, ...], crop: int) -> list[Tensor]:
    """The same random window of every tensor, mirrored left-right half of the time."""
    height, width = tensors[0].shape[-2:]
    top, left = random_crop_box(height, width, crop)
    out = [t[:, top : top + crop, left : left + crop] for t in tensors]
    if bool(torch.rand(()) < 0.5):
        out = [t.flip(-1) for t in out]
        for i in flow_indices:
            out[i] = out[i] * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
    return [t.contiguous() for t in out]


def read_captions(path: str) -> dict[str, str]:
    """``name -> caption`` from ``<name or path>: caption`` lines."""
    captions = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if ":" not in line:
                continue
            key, caption = line.rstrip("\n").split(":", 1)
            key = re.sub(r"_input\.(jpg|jpeg|png)$", "", os.path.basename(key.strip()))
            captions[key] = caption.strip()
    return captions


class FlowClips(torch.utils.data.Dataset):
    """Samples for G_flow / the hint network: ``image [3]``, ``mask [1]``, ``flow [2]`` px/frame,
    ``hint [2]`` px/frame (with ``hints``) and ``caption``."""

    def __init__(self, root: str, crop: int, hints: bool = False, captions: Optional[dict[str, str]] = None):
        self.clips = find_clips(root)
        self.crop = crop
        self.hints = hints
        self.captions = captions or {}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        image = load_rgb(clip.image)
        flow = resize_flow(load_flow(clip.flow), tuple(image.shape[-2:]))
        mask = load_grey(clip.mask) if clip.mask else average_rule_mask(flow)
        tensors = [image, flow, mask]
        if self.hints:
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))
            k = int(torch.randint(1, MAX_HINTS + 1, ()))
            tensors.append(flow_hint(flow, mask, k, generator))
        flows = (1, 3) if self.hints else (1,)
        tensors = crop_and_flip(fit_for_crop(tensors, flows, self.crop), flows, self.crop)
        caption = self.captions.get(clip.name, "")
        sample = {"image": tensors[0], "flow": tensors[1], "mask": tensors[2], "caption": caption}
        if self.hints:
            sample["hint"] = tensors[3]
        return sample


def frame_count(folder: str) -> int:
    return len([f for f in os.listdir(folder) if re.fullmatch(r"\d+\.(png|jpg)", f)])


def frame_path(folder: str, index: int) -> str:
    png = os.path.join(folder, f"{index}.png")
    return png if os.path.isfile(png) else os.path.join(folder, f"{index}.jpg")


class FrameClips(torch.utils.data.Dataset):
    """Samples for G_frame: ``start``, ``middle``, ``end`` frames [3] in [-1, 1], the ``flow`` [2]
    px/frame and ``steps = (middle - start, end + 1 - start)`` (the release's index sampling:
    start in the first third, end in the last third, middle in between)."""

    def __init__(self, root: str, crop: int):
        self.clips = find_clips(root, need_frames=True)
        self.crop = crop

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        count = frame_count(clip.frames)
        start = int(torch.randint(0, max(1, count // 3), ()))
        end = int(torch.randint(max(start + 1, count // 3 * 2), count, ())) if count > 1 else 0
        middle = int(torch.randint(start, max(start + 1, end), ()))
        frames = [load_rgb(frame_path(clip.frames, i)) for i in (start, middle, end)]
        flow = resize_flow(load_flow(clip.flow), tuple(frames[0].shape[-2:]))
        tensors = crop_and_flip(fit_for_crop([*frames, flow], (3,), self.crop), (3,), self.crop)
        return {
            "start": tensors[0],
            "middle": tensors[1],
            "end": tensors[2],
            "flow": tensors[3],
            "steps": torch.tensor([middle - start, end + 1 - start]),
        }


def write_synthetic_clips(root: str, count: int = 4, size: int = 48, frames: int = 12, seed: int = 0) -> None:
    """A tiny dataset in the layout above: textured pictures whose masked band drifts by a constant flow.

    Used by the smoke tests; the frames are the picture shifted by ``n * flow``.
    """
    from PIL import Image

    os.makedirs(root, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for c in range(count):
        coarse = torch.rand(3, size // 6, size // 6, generator=generator)
        picture = F.interpolate(coarse[None], size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)
        band = slice(size // 3, 2 * size // 3)
        speed = 0.5 + float(torch.rand((), generator=generator))
        flow = torch.zeros(2, size, size)
        flow[0, band] = speed if c % 2 == 0 else -speed
        name = f"clip{c:03d}"
        _save_png(picture, os.path.join(root, f"{name}_input.png"))
        np.save(os.path.join(root, f"{name}_motion.npy"), flow.numpy())
        folder = os.path.join(root, f"{name}_gt", "images")
        os.makedirs(folder, exist_ok=True)
        for n in range(frames):
            frame = picture.clone()
            shift = round(n * float(flow[0, size // 2, 0]))
            frame[:, band] = torch.roll(picture[:, band], shifts=shift, dims=-1)
            _save_png(frame, os.path.join(folder, f"{n}.png"))
        Image.fromarray(((flow[0] != 0).numpy() * 255).astype(np.uint8)).save(os.path.join(root, f"{name}_mask.png"))


def _save_png(image: Tensor, path: str) -> None:
    from PIL import Image

    array = (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(path)
