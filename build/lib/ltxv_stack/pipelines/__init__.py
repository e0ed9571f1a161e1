"""Text/image/video-to-video generation with LTX-Video: the official base and multi-scale pipelines.

    from ltx_core import GenerationRequest, Models, PipelineConfig, TextConditioning, generate
    cfg = PipelineConfig.from_dict(load_pipeline_config("ltxv-13b-0.9.8-distilled"))
    res = generate(Models.from_checkpoint(ck, upsampler), cfg, TextConditioning(embeds, mask, neg, neg_mask),
                   GenerationRequest(height=480, width=704, num_frames=121, frame_rate=30, seed=171198))
    res.video  # (B, 3, 121, 480, 704) in [0, 1]
"""
from ..conditioning.items import ConditioningItem
from ..conditioning.text import TextConditioning
from ..sampling.denoise import Cancelled
from .config import PassConfig, PipelineConfig
from .decode import DecodeSettings, DecodeTiling, VideoTarget, decode_video, tone_map
from .generation import GenerationResult, generate
from .multiscale import check_upsampler, upsample_latents
from .request import GenerationRequest, Models
from .sampling_pass import encode_media

__all__ = ["Cancelled", "ConditioningItem", "DecodeSettings", "DecodeTiling", "GenerationRequest", "GenerationResult",
           "Models", "PassConfig", "PipelineConfig", "TextConditioning", "VideoTarget", "check_upsampler",
           "decode_video", "encode_media", "generate", "tone_map", "upsample_latents"]
