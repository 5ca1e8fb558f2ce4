"""Writes the editor's help page of each node, ``web/docs/<NodeName>.md``, from its definition.

The graph editor (frontends 1.32 and 1.58) fetches ``/extensions/<pack>/docs/<NodeName>.md`` from
the pack's ``WEB_DIRECTORY``. The pages are rendered from what ``/object_info`` says (description,
inputs with tooltips, outputs), so they cannot drift from the nodes: run
``python tests/make_node_docs.py`` after changing a node; ``test_node_library.py`` checks they match.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402,F401  (``text2cinemagraph`` is this checkout, as in the tests)
from comfy_harness import PACK_FOLDER_NAME, REPO, fetch_object_info  # noqa: E402

DOCS = REPO / "web" / "docs"


def pack_nodes(object_info: dict) -> list[str]:
    return sorted(name for name, info in object_info.items() if info["python_module"].endswith(PACK_FOLDER_NAME))


def _kind(spec: list) -> str:
    return "choice" if isinstance(spec[0], list) else spec[0]


def _cell(text: str) -> str:
    # Tooltips may name this machine's model folder; the page names ComfyUI's instead.
    text = re.sub(r"(?:/[^\s|/]+)*/models/", "ComfyUI/models/", text)
    return text.replace("|", "\\|").replace("\n", " ")


def render(info: dict) -> str:
    """The help page of one node (``/object_info`` entry)."""
    lines = [f"# {info['display_name']}", "", info["description"], "", "## Inputs", "",
             "| Input | Type | What it does |", "| --- | --- | --- |"]
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            options = spec[1] if len(spec) > 1 else {}
            notes = [group] if group == "optional" else []
            notes += ["advanced"] if options.get("advanced") else []
            label = f"`{name}`" + (f" ({', '.join(notes)})" if notes else "")
            lines.append(f"| {label} | {_kind(spec)} | {_cell(options.get('tooltip', ''))} |")
    lines += ["", "## Outputs", "", "| Output | Type | What it is |", "| --- | --- | --- |"]
    tooltips = info.get("output_tooltips") or [""] * len(info["output"])
    for name, kind, tip in zip(info["output_name"], info["output"], tooltips):
        lines.append(f"| `{name}` | {kind if isinstance(kind, str) else 'choice'} | {_cell(tip)} |")
    lines += ["", f"Category: {info['category']}. Class name: `{info['name']}`.", ""]
    return "\n".join(lines)


def main() -> None:
    object_info = fetch_object_info()
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in pack_nodes(object_info):
        (DOCS / f"{name}.md").write_text(render(object_info[name]))
        print("wrote", (DOCS / f"{name}.md").relative_to(REPO))


if __name__ == "__main__":
    main()
