"""ComfyUI node classes of the pack: thin wrappers over :mod:`.stages`.

Importing this package loads no node: ComfyUI reads the mappings in :mod:`.registry` (through the
pack's top-level ``__init__``), and the library in :mod:`.stages` never needs them.
"""
