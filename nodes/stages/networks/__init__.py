"""The learned networks of Text2Cinemagraph, compatible with the authors' released weights.

- :class:`SPADEXAttnUnet4MotionSD` (G_flow): picture + mask + prompt -> flow.
- :class:`SPADEUnet4MaskMotion`: picture + mask + direction hint -> flow.
- :class:`SPADEUnet4SoftmaxSplating` (G_frame): picture + integrated flow -> frames.

Plain torch modules (G_flow's cross-attention comes from ``diffusers``,
imported only when G_flow is built); :mod:`.checkpoints` reads, checks and
converts weight files, :mod:`.predict` turns the networks' outputs into the
pipeline's flow fields.
"""

from .checkpoints import (
    FLOW,
    FRAME,
    HINT,
    KINDS,
    build_network,
    check_state_dict,
    convert_checkpoint,
    detect_kind,
    infer_config,
    load_network,
    read_state_dict,
    save_network,
)
from .flow_net import FLOW_NORM, FlowNetConfig, SPADEXAttnUnet4MotionSD
from .frame_net import FrameNetConfig, SPADEUnet4SoftmaxSplating
from .hint_net import HintNetConfig, SPADEUnet4MaskMotion
from .layers import fold_spectral_norm

__all__ = [
    "FLOW",
    "FLOW_NORM",
    "FRAME",
    "HINT",
    "KINDS",
    "FlowNetConfig",
    "FrameNetConfig",
    "HintNetConfig",
    "SPADEUnet4MaskMotion",
    "SPADEUnet4SoftmaxSplating",
    "SPADEXAttnUnet4MotionSD",
    "build_network",
    "check_state_dict",
    "convert_checkpoint",
    "detect_kind",
    "fold_spectral_norm",
    "infer_config",
    "load_network",
    "read_state_dict",
    "save_network",
]
