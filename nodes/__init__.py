"""ComfyUI node classes of the pack (thin wrappers over :mod:`.stages`)."""

from .motion import EulerIntegrate, FlowPredictor, SymmetricSplatFrameGen
from .video import LoopVideoWriter

NODE_CLASS_MAPPINGS = {
    "FlowPredictor": FlowPredictor,
    "EulerIntegrate": EulerIntegrate,
    "SymmetricSplatFrameGen": SymmetricSplatFrameGen,
    "LoopVideoWriter": LoopVideoWriter,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FlowPredictor": "T2C Flow Predictor",
    "EulerIntegrate": "T2C Euler Integrate",
    "SymmetricSplatFrameGen": "T2C Symmetric Splat Frames",
    "LoopVideoWriter": "T2C Loop Video Writer",
}
