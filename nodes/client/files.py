"""What the queue client sends to a ComfyUI server and fetches from it.

Uploads: only the pictures the user named (``--set``, ``--batch``, or all the workflow's
local paths behind an explicit flag), and only files Pillow opens as pictures.
Downloads: only ``output`` and ``temp`` files, each kept inside ``--out``
whatever the server names, each written under a partial name and renamed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ..stages.files import atomic_write
from .errors import ArgumentError, PromptError
from .server import Server
from .workflow_format import node_id_order

# Node classes whose image input names a file in ComfyUI's input folder.
IMAGE_LOADERS = {"LoadImage": "image", "LoadImageMask": "image", "LoadImageOutput": "image"}
# Where each kind of server output goes under --out; any other ``type`` is refused.
OUTPUT_TYPES = {"output": "", "temp": "previews"}


# --- uploads ---------------------------------------------------------------------------------


@dataclass
class Upload:
    """A local picture to send to the server's input folder for one loader input."""

    node_id: str
    input: str
    path: str


def _local_file(value: str, base_dirs: tuple[str, ...]) -> Optional[str]:
    value = os.path.expanduser(value)
    candidates = [value] if os.path.isabs(value) else [os.path.join(d, value) for d in base_dirs]
    return next((c for c in candidates if os.path.isfile(c)), None)


def _check_picture(path: str, where: str) -> None:
    """Refuse anything Pillow cannot open as a picture (a key file, a token, a document)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ArgumentError(
            where, f"{path!r} is not a picture Pillow can open ({type(error).__name__}); only pictures "
            "(PNG, JPEG, WebP, ...) are uploaded"
        ) from error


def plan_uploads(
    prompt: dict, named: dict[tuple[str, str], str], base_dirs: tuple[str, ...] = (".",), include_workflow: bool = False
) -> tuple[list[Upload], list[Upload]]:
    """``(to upload, left alone)``: loader inputs whose value names an existing local file.

    Only values the user named on the command line (``named``: ``(node id, input)`` -> the
    option that set it, ``--set`` or ``--batch``) are uploaded, unless ``include_workflow`` also allows the
    paths written in the workflow file (a shared workflow could name any private
    file). Every file to upload must be a picture Pillow can open.
    """
    uploads, skipped = [], []
    for node_id, node in prompt.items():
        name = IMAGE_LOADERS.get(node.get("class_type", ""))
        value = node.get("inputs", {}).get(name) if name else None
        local = _local_file(value, base_dirs) if isinstance(value, str) else None
        if local is None:
            continue
        upload = Upload(node_id, name, local)
        if (node_id, name) not in named and not include_workflow:
            skipped.append(upload)
            continue
        option = named.get((node_id, name), "workflow node")
        where = f"{option} {node_id}.{name}"
        _check_picture(local, where)
        uploads.append(upload)
    return uploads, skipped


def upload_pictures(server: Server, prompt: dict, uploads: list[Upload]) -> None:
    """Send each planned picture to the server's input folder and point its node at the upload."""
    for upload in uploads:
        stored = server.upload_picture(upload.path, f"node {upload.node_id}")
        prompt[upload.node_id]["inputs"][upload.input] = stored


# --- downloads -------------------------------------------------------------------------------


def output_files(history_entry: dict) -> list[dict]:
    """Every file entry (``filename``, ``subfolder``, ``type``) in a history entry's outputs."""
    files = []
    for node_id, output in sorted(history_entry.get("outputs", {}).items(), key=lambda kv: node_id_order(kv[0])):
        for value in output.values():
            if not isinstance(value, list):
                continue
            for entry in value:
                if isinstance(entry, dict) and "filename" in entry:
                    files.append({**entry, "node": node_id})
    return files


def _plain_parts(text: str, what: str) -> list[str]:
    """The folder names of a relative path from the server, refusing anything that could leave a folder."""
    if not isinstance(text, str) or "\x00" in text or "\\" in text or text.startswith("/") or ":" in text:
        raise PromptError(f"the server named an output {what} {text!r}, which is not a plain relative path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise PromptError(f"the server named an output {what} {text!r}, which leads outside the output folder")
    return parts


def download_target(entry: dict, out_dir: str) -> str:
    """Where one output file goes: inside ``out_dir`` (temp files in ``previews``), or :class:`PromptError`.

    The server's ``type`` must be one of :data:`OUTPUT_TYPES`; ``subfolder`` and
    ``filename`` must stay inside their folder even after symbolic links are followed.
    """
    kind = entry.get("type", "output")
    if kind not in OUTPUT_TYPES:
        raise PromptError(
            f"the server named an output of type {kind!r} ({entry.get('filename')!r}); only "
            f"{', '.join(OUTPUT_TYPES)} outputs are downloaded"
        )
    filename = _plain_parts(entry.get("filename", ""), "file name")
    if len(filename) != 1:
        raise PromptError(f"the server named an output file {entry.get('filename')!r}, which is not a plain file name")
    root = os.path.realpath(os.path.join(out_dir, OUTPUT_TYPES[kind]))
    target = os.path.join(root, *_plain_parts(entry.get("subfolder", ""), "subfolder"), filename[0])
    out_root = os.path.realpath(out_dir)
    if os.path.commonpath([out_root, os.path.realpath(target)]) != out_root:
        raise PromptError(f"the server named an output outside the output folder: {target!r}")
    return target


def download_outputs(server: Server, history_entry: dict, out_dir: str) -> list[str]:
    """Fetch every output file via ``/view``: outputs into ``out_dir``, previews into ``out_dir/previews``.

    Every entry is checked before anything is fetched, so a hostile entry writes nothing.
    """
    entries = output_files(history_entry)
    targets = [download_target(entry, out_dir) for entry in entries]
    written = []
    for entry, target in zip(entries, targets):
        response = server.view(entry)
        with atomic_write(target) as partial:
            with open(partial, "wb") as handle:
                for chunk in response.iter_content(1 << 20):
                    handle.write(chunk)
        written.append(target)
    return written
