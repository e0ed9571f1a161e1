"""LTX-Video model stack: official checkpoints in, the official numbers out. No ComfyUI imports here.

The names below are the public API: the command line (`ltx_core.cli`) and the ComfyUI nodes use only these.
They are imported on first use: `python -m ltx_core --help` and argument errors should not wait for transformers
and the model code to import.
"""
import importlib

_EXPORTS = {
    # loading
    "Checkpoint": ".loader.checkpoint",
    "load_checkpoint": ".loader.checkpoint",
    "ModelFileError": ".loader.errors",
    "load_text_encoder": ".loader.text_encoder_files",
    "load_upsampler": ".loader.upsampler_file",
    "DownloadError": ".app.downloads",
    "fetch_model_files": ".app.downloads",
    "files_for_config": ".app.downloads",
    "LoadOptions": ".app.loading",
    "OptionError": ".app.loading",
    "companion_dtype": ".app.loading",
    "load_video_model": ".app.loading",
    "load_model_file": ".app.loading",
    "check_vae_fits": ".app.loading",
    "load_text_encoder_on_backend": ".app.loading",
    "load_vae_file": ".loader.vae_file",
    "holds_vae": ".loader.checkpoint",
    "transformer_only": ".loader.checkpoint",
    "RELEASE_CHOICES": ".defaults",
    "Lora": ".lora",
    "LoraUse": ".lora",
    "read_lora": ".lora",
    "check_lora_file": ".lora",
    "lora_bytes": ".lora",
    # recipes
    "PipelineConfig": ".pipelines.config",
    "load_pipeline_config": ".presets",
    "preset_names": ".presets",
    "preset_for_model": ".presets",
    "OFFICIAL_CHECKPOINTS": ".presets",
    "OFFICIAL_TEXT_ENCODERS": ".presets",
    "OFFICIAL_UPSAMPLERS": ".presets",
    "OFFICIAL_LORAS": ".presets",
    # conditioning
    "TextConditioning": ".conditioning.text",
    "encode_prompts": ".app.text",
    "chunk_prompts": ".app.text",
    "text_problem": ".app.text",
    "encode_chunk_prompts": ".app.text",
    "ConditioningItem": ".conditioning.items",
    "ControlVideo": ".conditioning.items",
    "prepare_control_video": ".app.keyframes",
    "Keyframe": ".app.keyframes",
    "prepare_keyframes": ".app.keyframes",
    "MediaError": ".conditioning.media",
    "load_media": ".conditioning.media",
    "pad_media": ".conditioning.media",
    # generation
    "Models": ".pipelines.request",
    "GenerationRequest": ".pipelines.request",
    "GenerationResult": ".pipelines.generation",
    "generate": ".pipelines.generation",
    "generate_long": ".pipelines.long_video",
    "TemporalTiling": ".pipelines.long_video",
    "Cancelled": ".sampling.denoise",
    "check_upsampler": ".pipelines.multiscale",
    "upsample_latents": ".pipelines.multiscale",
    "encode_media": ".pipelines.sampling_pass",
    # decoding and output
    "DecodeSettings": ".pipelines.decode",
    "DecodeTiling": ".pipelines.decode",
    "TilingConfig": ".model.video_vae",
    "VideoTarget": ".pipelines.decode",
    "decode_video": ".pipelines.decode",
    "decode_video_pieces": ".pipelines.decode",
    "TEMPORAL_PIECES": ".pipelines.decode",
    "decode_output_pieces": ".pipelines.generation",
    "save_video_pieces": ".app.output",
    "save_latents": ".app.output",
    "save_video": ".app.output",
    # memory
    "MemoryRefusal": ".memory.plan",
    "is_out_of_memory": ".memory.oom",
    "TEXT_ENCODE_BYTES": ".memory.plan",
    "check_generation_memory": ".app.planning",
    "decode_work_bytes": ".memory.plan",
    "device_free_bytes": ".memory.estimate",
    "encode_work_bytes": ".memory.plan",
    "stream_blocks": ".memory.streaming",
    "transformer_weight_bytes": ".memory.estimate",
    "upsample_work_bytes": ".memory.plan",
    # geometry and vocabularies
    "FRAMES_PER_LATENT": ".geometry",
    "PIXELS_PER_LATENT": ".geometry",
    "LATENT_CHANNELS": ".geometry",
    "frame_count_problem": ".geometry",
    "padded_frames": ".geometry",
    "pixel_size": ".geometry",
    "pixel_size_problem": ".geometry",
    "CONDITIONING_CRF": ".defaults",
    "DECODE_NOISE_SCALE": ".defaults",
    "DECODE_TIMESTEP": ".defaults",
    "DEFAULT_FRAME_RATE": ".defaults",
    "MAX_PASS_FRAMES": ".defaults",
    "DEFAULT_TILE_FRAMES": ".defaults",
    "DEFAULT_OVERLAP_FRAMES": ".defaults",
    "DEFAULT_OVERLAP_STRENGTH": ".defaults",
    "DEFAULT_HEIGHT": ".defaults",
    "DEFAULT_NEGATIVE_PROMPT": ".defaults",
    "DEFAULT_NUM_FRAMES": ".defaults",
    "DEFAULT_PIPELINE_CONFIG": ".defaults",
    "DEFAULT_SEED": ".defaults",
    "MAX_SEED": ".defaults",
    "DEFAULT_WIDTH": ".defaults",
    "HF_REPO": ".defaults",
    "HF_URL": ".defaults",
    "IMAGE_COND_NOISE_SCALE": ".defaults",
    "SCHEDULES": ".defaults",
    "STG_MODE_NAMES": ".defaults",
    "T5_SOURCES": ".defaults",
    "WEIGHT_DTYPES": ".defaults",
    "BACKENDS": ".defaults",
    "OV_WEIGHTS": ".defaults",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
