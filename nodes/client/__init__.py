"""The queue client: runs workflow files on ComfyUI servers over HTTP (``python -m text2cinemagraph queue``).

It imports no ComfyUI; of the pack, only the stages' atomic file writes. Its parts, each
importing only those listed before it: :mod:`.errors`, :mod:`.workflow_format` (UI <-> API
prompts), :mod:`.server` (one server's HTTP endpoints), :mod:`.files` (what is uploaded and
where downloads go), :mod:`.queue` (one workflow on one server, start to end) and :mod:`.batch`
(a folder of pictures over several servers).
"""
