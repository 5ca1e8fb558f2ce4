"""Command line: ``python -m text2cinemagraph animate PICTURE --mask MASK --out loop.mp4``,
``python -m text2cinemagraph loop CLIP.mp4 --method eulerian --out loop.mp4``,
``python -m text2cinemagraph queue WORKFLOW --server http://127.0.0.1:8188 --set 3.frames=120``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

from .kernels.errors import InputError
from .kernels.integrate import integrator_bytes, motion_bytes
from .nodes.stages.directions import DIRECTION_SECTORS, REGION_KINDS
from .nodes.stages.frames import stream_pixel_frames
from .nodes.stages.memory import render_bytes, require_memory
from .nodes.stages.pictures import load_mask, load_picture
from .nodes.stages.procedural_flow import procedural_flow
from .nodes.stages.renders import PIXEL_RENDERS, render_method
from .nodes.stages.video import FORMATS, write_loop


def _tqdm_progress(description: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    from tqdm import tqdm

    bar: Optional[tqdm] = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="step", leave=True)
        bar.update(done - bar.n)

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def _run_stage(description: str, stage: Callable, *args, **kwargs):
    update, close = _tqdm_progress(description)
    try:
        return stage(*args, progress=update, **kwargs)
    finally:
        close()


def _return_freed_memory_to_the_system() -> None:
    """Serve every block of 1 MiB or more with its own mapping (glibc ``mallopt(M_MMAP_THRESHOLD)``).

    glibc raises its mmap threshold as large blocks are freed (up to 32 MiB), after
    which the per-frame temporaries of a 4K render stay in the heap and fragment it:
    the process grows part after part. Own mappings go back to the system when freed.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (malloc.h)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def animate(args: argparse.Namespace) -> int:
    _return_freed_memory_to_the_system()

    picture, alpha_mask = load_picture(args.picture, "PICTURE")
    mask = load_mask(args.mask, "--mask") if args.mask else alpha_mask
    if mask is None:
        raise InputError("--mask", "is required when the picture has no alpha channel")
    fmt = args.format or _format_from_extension(args.out)
    flow, angles = procedural_flow(
        mask, args.direction, args.speed, args.region, args.seed, size=tuple(picture.shape[:2])
    )
    print("direction(s): " + ", ".join(f"{a:.1f} deg" for a in angles), file=sys.stderr)
    return _write_animation(picture, flow, args, fmt)


def _write_animation(picture, flow, args: argparse.Namespace, fmt: str) -> int:
    """Integrate, render and encode the loop of ``flow`` over ``picture`` as a stream; print the file's path."""
    import torch

    device = torch.device(args.device)
    if args.parts is None:
        full = motion_bytes(int((flow != 0).any(dim=0).sum()), args.frames, *picture.shape[:2])
        args.parts = min(max(2, -(-full // MOTION_BUDGET)), max(args.frames, 1))
    _check_memory(picture, flow, args, device)
    # Rendered and encoded a few frames at a time, in parts of the loop whose motion alone is kept.
    frames = stream_pixel_frames(picture, flow, args.frames, chunk=args.chunk, parts=args.parts, device=device,
                                 method=render_method(args.render, "--render"))
    return _write_frames(frames, args, fmt, args.frames)


def _write_frames(frames, args: argparse.Namespace, fmt: str, count: int) -> int:
    """Encode streamed IMAGE chunks into ``--out`` (atomically) and print its path."""
    path = _run_stage(
        "render + encode",
        write_loop,
        frames,
        args.out,
        format=fmt,
        fps=args.fps,
        loop_count=args.loop,
        repeat_cycles=args.repeat,
        output_name="--out",
        frame_count=count,
    )
    print(path)
    return 0


MOTION_BUDGET = 256 << 20  # bytes of motion kept at once by default (see --parts)

# The stages name their inputs as the nodes do; the command line names its options.
_LOOP_OPTIONS = {"frames": "--frames", "mask": "--mask", "reference": "--reference", "threshold": "--threshold",
                 "speckle": "--speckle", "blend": "--blend"}


def loop(args: argparse.Namespace) -> int:
    """``loop CLIP``: a seamless loop of a clip, streamed (the clip is decoded again for each pass)."""
    try:
        return _loop(args)
    except InputError as error:
        name = _LOOP_OPTIONS.get(error.input_name)
        if name is None:
            raise
        raise InputError(name, str(error).split(": ", 1)[1]) from error


def _loop(args: argparse.Namespace) -> int:
    from .nodes.stages.clip_loop import clip_flow, loop_clip
    from .nodes.stages.clips import FileClip

    _return_freed_memory_to_the_system()
    fmt = args.format or _format_from_extension(args.out)
    clip = FileClip(args.clip, "CLIP")
    if args.fps is None:
        args.fps = clip.fps or 30.0
    mask = load_mask(args.mask, "--mask") if args.mask else None
    if args.method == "eulerian":
        args.frames = 60 if args.frames is None else args.frames
        flow, found = _run_stage("flow", clip_flow, clip, args.reference, mask, args.threshold, args.speckle)
        _save_mask(found.region, args.save_mask)
        return _write_animation(found.reference, flow, args, fmt)
    chunks, span, found = _run_stage("span", loop_clip, clip, args.reference, mask, args.frames or 0, args.blend,
                                     args.threshold, args.speckle)
    held = (args.blend + 3 * args.chunk + 2) * clip.height * clip.width * clip.channels * 4
    require_memory(held, "cpu", "--frames", f"a loop of {span.period} frames at {clip.width}x{clip.height}")
    print(f"loop: frames {span.start}..{span.start + span.period - 1} of {clip.count} (seam cost {span.cost:.3g})",
          file=sys.stderr)
    _save_mask(found.region, args.save_mask)
    return _write_frames(chunks(chunk=args.chunk), args, fmt, span.period)


def _save_mask(region, path: Optional[str]) -> None:
    """Write the region (white = moves) as a greyscale PNG, atomically, when ``--save-mask`` asks."""
    if not path:
        return
    from PIL import Image

    from .nodes.stages.files import atomic_write

    with atomic_write(path) as temporary:
        Image.fromarray(region.numpy().astype("uint8") * 255).save(temporary, format="PNG")


def _check_memory(picture, flow, args: argparse.Namespace, device) -> None:
    """Refuse, before any work, a loop whose streamed render cannot fit in memory."""
    if args.frames < 1:
        raise InputError("--frames", f"must be at least 1, got {args.frames}")
    if args.chunk < 1 or args.parts < 1:
        raise InputError("--chunk" if args.chunk < 1 else "--parts", "must be at least 1")
    height, width, channels = picture.shape
    moving = int((flow != 0).any(dim=0).sum())
    stored = -(-args.frames // args.parts)  # frames of motion kept at once
    motion = motion_bytes(moving, args.frames, height, width, stored) + integrator_bytes(moving, args.parts, stored)
    frames = 3 * min(args.chunk, args.frames) * height * width * channels * 4  # the chunk, its conversion, a spare
    what = f"a loop of {args.frames} frames at {width}x{height} ({moving} moving pixels)"
    on_device = motion + render_bytes(height * width, moving, channels)
    if device.type == "cpu":
        require_memory(on_device + frames, device, "--frames", what)
    else:
        require_memory(on_device, device, "--frames", what)
        require_memory(frames, "cpu", "--frames", what)


DEFAULT_SERVER = "http://127.0.0.1:8188"


def queue(args: argparse.Namespace) -> int:
    """Queue a workflow on a running ComfyUI server (or a batch on several), follow it, download its outputs."""
    import requests

    from .nodes.client.errors import ArgumentError, PromptError, QueueInterrupted

    servers = args.server or [DEFAULT_SERVER]
    try:
        return _queue_batch(args, servers) if args.batch else _queue_one(args, servers)
    except ArgumentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (PromptError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except requests.RequestException as error:
        print(f"error: cannot talk to ComfyUI at {', '.join(servers)}: {error}", file=sys.stderr)
        return 1
    except QueueInterrupted as error:
        print(f"interrupted: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before anything was queued; nothing runs on the server", file=sys.stderr)
        return 130


def _client_options(args: argparse.Namespace) -> dict:
    """The options a single workflow and a batch share."""
    return dict(
        overrides=args.set,
        out_dir=args.out,
        timeout=args.timeout,
        show_progress=not args.quiet,
        upload_workflow_images=args.upload_workflow_images,
    )


def _queue_one(args: argparse.Namespace, servers: list[str]) -> int:
    from .nodes.client.errors import ArgumentError
    from .nodes.client.queue import queue_workflow

    if len(servers) > 1:
        raise ArgumentError("--server", f"is given {len(servers)} times; several servers run a --batch of pictures")
    result = queue_workflow(servers[0], args.workflow, **_client_options(args))
    for path in result.files:
        print(path)
    return 0


def _queue_batch(args: argparse.Namespace, servers: list[str]) -> int:
    from .nodes.client.batch import run_batch

    report = run_batch(servers, args.workflow, args.batch, **_client_options(args))
    for name in report.done:
        for path in report.done[name]:
            print(path)
    for line in report.summary():
        print(line, file=sys.stderr)
    return report.exit_code


def convert_checkpoint_command(args: argparse.Namespace) -> int:
    from .nodes.stages.networks import convert_checkpoint

    try:
        kind, count = convert_checkpoint(args.source, args.target)
    except OSError as error:  # reading IN is checked inside; this is writing OUT (full disk, no permission)
        raise InputError("OUT", f"cannot write {args.target!r}: {error.strerror or error}; nothing was written") from error
    print(f"{args.target}: {count} tensors of the {kind} network", file=sys.stderr)
    return 0


def _format_from_extension(path: str) -> str:
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    by_extension = {"mp4": "mp4", "webm": "webm", "gif": "gif", "webp": "webp", "png": "apng", "apng": "apng"}
    if extension in by_extension:
        return by_extension[extension]
    if extension == "":
        return "png-sequence"
    raise InputError("--out", f"unknown extension .{extension}; use .mp4, .webm, .gif, .webp, .png or --format")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m text2cinemagraph",
        description="Text2Cinemagraph: seamless looping cinemagraphs from a picture and a mask.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    a = commands.add_parser(
        "animate",
        help="animate the masked region of a picture into a seamless loop (no model weights needed)",
        description="Procedural flow from the mask and direction, Euler integration, symmetric splatting, video.",
    )
    a.add_argument("picture", help="the picture (PNG/JPEG/...); an alpha channel counts as the mask (1 - alpha)")
    a.add_argument("--mask", help="greyscale picture of the region to animate (white moves)")
    a.add_argument(
        "--direction",
        default="auto",
        help="'auto', an angle in degrees, one of: " + "; ".join(DIRECTION_SECTORS),
    )
    a.add_argument("--speed", type=float, default=0.5, help="mean speed in px/frame (default 0.5)")
    a.add_argument("--region", default="generic", choices=REGION_KINDS, help="what the region is (for 'auto')")
    a.add_argument("--seed", type=int, default=0, help="seed of the angle and wobbles (default 0)")
    a.add_argument("--frames", type=int, default=60, help="frames in one loop (default 60)")
    _add_output_arguments(a)
    a.set_defaults(run=animate)
    _add_loop_command(commands)

    q = commands.add_parser(
        "queue",
        help="run a workflow on a running ComfyUI server and download its outputs",
        description="Queue a workflow file (UI or API format) on a ComfyUI server, show its progress and "
        "download its output files; with --batch, once per picture of a folder, on one or several servers. "
        "Exit code 1 with ComfyUI's message when the prompt (or a job of the batch) is refused or fails, "
        "2 for bad arguments, 130 after Ctrl-C.",
    )
    q.add_argument("workflow", help="workflow .json, as saved by the graph editor or exported in API format")
    q.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help=f"ComfyUI's URL (default {DEFAULT_SERVER}); repeat it to spread a --batch over several servers",
    )
    q.add_argument(
        "--batch",
        metavar="NODE.INPUT=FOLDER_OR_GLOB",
        help="run the workflow once per picture: a folder (its picture files) or a glob such as 'photos/*.jpg'; "
        "each picture is uploaded to NODE.INPUT (a LoadImage's image) and its outputs go to --out/<picture name>/. "
        "Pictures whose folder is already there are skipped, so an interrupted batch resumes",
    )
    q.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NODE.INPUT=VALUE",
        help="change an input before queueing; NODE is a node id, title or class name; VALUE is JSON when it "
        "parses (8, 0.5, true), else text; a LoadImage path to a local picture is uploaded to the server (and "
        "listed first). Repeatable.",
    )
    q.add_argument(
        "--upload-workflow-images",
        action="store_true",
        help="also upload local pictures whose paths are written inside the workflow file (off by default: a "
        "shared workflow could name any private file); only files Pillow opens as pictures are sent",
    )
    q.add_argument("--out", default="t2c_outputs", help="folder for the downloaded outputs (default ./t2c_outputs)")
    q.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(run=queue)

    c = commands.add_parser(
        "convert-checkpoint",
        help="convert one of the authors' latest_net_G.pth files to .safetensors (checked against its network)",
        description="Reads a pickled state dict without running any code from it (weights only), checks that it "
        "fits G_flow, the direction-hint network or G_frame, and writes its tensors as safetensors.",
    )
    c.add_argument("source", metavar="IN", help="latest_net_G.pth (or any .pth/.pt/.safetensors state dict)")
    c.add_argument("target", metavar="OUT", help="output .safetensors file")
    c.set_defaults(run=convert_checkpoint_command)
    _add_training_commands(commands)
    return parser


def _add_output_arguments(command: argparse.ArgumentParser, fps_help: str = "frames per second (default 30)",
                          fps: float | None = 30.0) -> None:
    """The render and file options of ``animate`` and ``loop``."""
    command.add_argument("--fps", type=float, default=fps, help=fps_help)
    command.add_argument("--format", choices=list(FORMATS), help="output format (default: from --out's extension)")
    command.add_argument("--loop", type=int, default=0, help="plays of a gif/webp/apng, 0 = forever")
    command.add_argument("--repeat", type=int, default=1, help="cycles written into the file (default 1)")
    command.add_argument(
        "--render",
        default=next(iter(PIXEL_RENDERS)),
        choices=list(PIXEL_RENDERS),
        help="resample (default): each frame reads the picture once, sharply, along the motion; "
        "splat: the older softmax splatting of pixels (softer mid-loop)",
    )
    command.add_argument("--device", default="cpu", help="torch device for integration and rendering (cpu, cuda)")
    command.add_argument("--chunk", type=int, default=2, help="frames rendered and held at once (default 2)")
    command.add_argument(
        "--parts",
        type=int,
        default=None,
        help="the loop is integrated and rendered in this many runs of frames, each keeping only its own "
        "motion in memory; the forward integration continues from run to run, the backward one resumes from "
        "checkpoints when they are small next to a run, else starts again (default: 2, or more to keep the "
        f"motion under {MOTION_BUDGET >> 20} MiB)",
    )
    command.add_argument("--out", required=True, help="output file (.mp4, .webm, .gif, .webp, .png) or folder")


def _add_loop_command(commands) -> None:
    from .nodes.stages.clip_loop import DEFAULT_BLEND, DEFAULT_SPECKLE, DEFAULT_THRESHOLD, LOOP_METHODS

    c = commands.add_parser(
        "loop",
        help="turn a clip into a seamless loop whose still part is frozen (no model weights needed)",
        description="Everything outside the region is the reference frame, bit for bit, in every frame. "
        "eulerian (default): the region's average optical flow animates the reference frame (seamless by "
        "construction, any length). loop: the clip's own frames, over the span whose seam is cheapest, "
        "switched, pixel by pixel, into its start. The clip is decoded again for each pass and never held whole.",
    )
    c.add_argument("clip", metavar="CLIP", help="the clip: a video file (mp4, webm, gif, ...) or a folder of frames")
    c.add_argument("--mask", help="greyscale picture of what may move (white); default: derived from the motion")
    c.add_argument("--method", choices=LOOP_METHODS, default=LOOP_METHODS[0], help="eulerian (default) or loop")
    c.add_argument("--frames", type=int, default=None,
                   help="frames in the loop (eulerian default 60; loop default 0: the best of at least half the clip)")
    c.add_argument("--reference", type=int, default=0, help="index of the reference frame (default 0)")
    c.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="without --mask: mean change per frame (0..1) above which a pixel moves "
                   f"(default {DEFAULT_THRESHOLD})")
    c.add_argument("--speckle", type=int, default=DEFAULT_SPECKLE,
                   help="without --mask: radius in px of the specks removed from the region "
                   f"(default {DEFAULT_SPECKLE})")
    c.add_argument("--blend", type=int, default=DEFAULT_BLEND,
                   help=f"loop: frames before the seam in which each pixel switches to the start (default {DEFAULT_BLEND})")
    c.add_argument("--save-mask", help="also write the region used as a PNG (to refine it and pass it as --mask)")
    _add_output_arguments(c, "frames per second (default: the clip's, or 30 for a folder of frames)", None)
    c.set_defaults(run=loop)


def _add_training_commands(commands) -> None:
    """``train-flow`` and ``train-frame``: the release's training of G_flow / the hint network and G_frame."""
    from .nodes.stages.training import train_flow, train_frame

    for name, module, summary in (
        ("train-flow", train_flow, "train G_flow (text-conditioned) or the direction-hint flow network"),
        ("train-frame", train_frame, "train G_frame, the feature-splatting frame network"),
    ):
        command = commands.add_parser(name, help=summary, description=module.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)


def _leave_the_pack_folder_off_sys_path() -> None:
    """Drop the pack's own folder from ``sys.path``, where ``python -m`` puts it when run inside the checkout.

    There, the pack's ``kernels/`` would answer to the name of Hugging Face's ``kernels``
    package, which transformers imports when it finds one. The CLI imports the pack as
    ``text2cinemagraph`` and never needs the folder itself on the path.
    """
    pack = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != pack]


def main(argv: Optional[Sequence[str]] = None) -> int:
    _leave_the_pack_folder_off_sys_path()
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
