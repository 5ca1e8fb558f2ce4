"""Text2Cinemagraph for ComfyUI.

Loaded by ComfyUI from ``custom_nodes/<any folder>`` (it reads
``NODE_CLASS_MAPPINGS``), and importable as the package ``text2cinemagraph``
without ComfyUI: the stages live in :mod:`.nodes.stages` and :mod:`.kernels`.
"""

if __package__:  # pytest may import this file alone when the checkout's folder name is not an identifier
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__version__ = "0.1.0"
# Served under /extensions/<pack folder>/: the editor's help page of each node is docs/<NodeName>.md.
WEB_DIRECTORY = "./web"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
