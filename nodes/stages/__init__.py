"""The math of each pipeline stage as plain functions of tensors.

Nothing here imports ComfyUI: the node classes in :mod:`..` are thin wrappers
around these functions, and the CLI and the tests call them directly.
"""
