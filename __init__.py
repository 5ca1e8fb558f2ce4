"""Text2Cinemagraph for ComfyUI.

Loaded by ComfyUI from ``custom_nodes/<any folder>`` (it reads
``NODE_CLASS_MAPPINGS``), and importable as the package ``text2cinemagraph``
without ComfyUI: the stages live in :mod:`.nodes.stages` and :mod:`.kernels`.
"""

__version__ = "0.1.0"
# Served under /extensions/<pack folder>/: the editor's help page of each node is docs/<NodeName>.md.
WEB_DIRECTORY = "./web"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]


def __getattr__(name: str):
    """The node mappings, loaded when ComfyUI asks for them, so that importing a stage loads no node."""
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        from .nodes import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
