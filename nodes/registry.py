"""The pack's nodes as ComfyUI reads them: class, display name and search words of each."""

from .cluster_mask import AttentionClusterMask
from .clip_loop import ClipFlow, LoopClip
from .examples import T2CExampleClip, T2CExampleImage
from .motion import EulerIntegrate, FlowPredictor, SymmetricSplatFrameGen
from .motion_brush import MotionBrush
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
    "MotionBrush": MotionBrush,
    "EulerIntegrate": EulerIntegrate,
    "SymmetricSplatFrameGen": SymmetricSplatFrameGen,
    "LoopVideoWriter": LoopVideoWriter,
    "ODISESegment": ODISESegment,
    "T2CExampleImage": T2CExampleImage,
    "LoopClip": LoopClip,
    "ClipFlow": ClipFlow,
    "T2CExampleClip": T2CExampleClip,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TwinPromptBuilder": "T2C Twin Prompt Builder",
    "AttentionInjectingSampler": "T2C Attention Injecting Sampler (twins)",
    "DDIMInvert": "T2C DDIM Invert",
    "AttentionClusterMask": "T2C Attention Cluster Mask",
    "FlowPredictor": "T2C Flow Predictor",
    "MotionBrush": "T2C Motion Brush (draw arrows)",
    "EulerIntegrate": "T2C Euler Integrate",
    "SymmetricSplatFrameGen": "T2C Symmetric Splat Frames",
    "LoopVideoWriter": "T2C Loop Video Writer",
    "ODISESegment": "T2C ODISE Segment",
    "T2CExampleImage": "T2C Example Picture",
    "LoopClip": "T2C Loop Clip (its own frames)",
    "ClipFlow": "T2C Clip Flow (eulerian loop of a clip)",
    "T2CExampleClip": "T2C Example Clip",
}

# Words people search the node library with (newer ComfyUI sends them to the editor as search_aliases).
SEARCH_ALIASES = {
    "TwinPromptBuilder": ["cinemagraph", "animate water", "text to cinemagraph"],
    "FlowPredictor": ["cinemagraph", "animate water", "motion", "optical flow"],
    "MotionBrush": ["cinemagraph", "draw motion", "motion arrows", "anchor", "motion brush"],
    "EulerIntegrate": ["cinemagraph", "seamless loop"],
    "SymmetricSplatFrameGen": ["cinemagraph", "seamless loop", "loop video", "animate water"],
    "LoopVideoWriter": ["cinemagraph", "seamless loop", "loop video", "save video"],
    "T2CExampleImage": ["cinemagraph", "example picture"],
    "LoopClip": ["cinemagraph", "loop video", "seamless loop", "video texture", "remove flicker", "animatediff"],
    "ClipFlow": ["cinemagraph", "loop video", "optical flow", "eulerian", "seamless loop", "animatediff"],
    "T2CExampleClip": ["cinemagraph", "example video", "example clip"],
}
for _name, _aliases in SEARCH_ALIASES.items():
    NODE_CLASS_MAPPINGS[_name].SEARCH_ALIASES = _aliases
