"""ComfyUI node classes of the pack (thin wrappers over :mod:`.stages`)."""

from .cluster_mask import AttentionClusterMask
from .motion import EulerIntegrate, FlowPredictor, SymmetricSplatFrameGen
from .prompts import TwinPromptBuilder
from .segment import ODISESegment
from .twin import AttentionInjectingSampler, DDIMInvert
from .video import LoopVideoWriter

NODE_CLASS_MAPPINGS = {
    "TwinPromptBuilder": TwinPromptBuilder,
    "AttentionInjectingSampler": AttentionInjectingSampler,
    "DDIMInvert": DDIMInvert,
    "AttentionClusterMask": AttentionClusterMask,
    "FlowPredictor": FlowPredictor,
    "EulerIntegrate": EulerIntegrate,
    "SymmetricSplatFrameGen": SymmetricSplatFrameGen,
    "LoopVideoWriter": LoopVideoWriter,
    "ODISESegment": ODISESegment,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TwinPromptBuilder": "T2C Twin Prompt Builder",
    "AttentionInjectingSampler": "T2C Attention Injecting Sampler (twins)",
    "DDIMInvert": "T2C DDIM Invert",
    "AttentionClusterMask": "T2C Attention Cluster Mask",
    "FlowPredictor": "T2C Flow Predictor",
    "EulerIntegrate": "T2C Euler Integrate",
    "SymmetricSplatFrameGen": "T2C Symmetric Splat Frames",
    "LoopVideoWriter": "T2C Loop Video Writer",
    "ODISESegment": "T2C ODISE Segment",
}
