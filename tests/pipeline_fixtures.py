"""Tiny model pairs (official `ltx_video` model, ours with the same weights) and the official pipelines built on
them, for the sampler/pipeline parity tests. The official code is an oracle only: the product never imports it."""
import functools

import torch

import tiny_transformer as tt
import tiny_upsampler as tu
import tiny_vae as tv

CAPTION_CHANNELS = 32  # the tiny transformers' caption_channels
TEXT_LEN = 12


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _quiet_encoder_variance_(model):
    """Make the encoder's log-variance output very negative, so the official posterior *sample* equals the mean
    (ours encodes the mean) to ~1e-7. Works on both models: their encoder keys are the same."""
    conv = model.encoder.conv_out.conv
    latent = 128
    with torch.no_grad():
        conv.weight[latent:] = 0.0
        conv.bias[latent:] = -100.0  # clamped to -30 by the official distribution: std ~ 3e-7


@functools.lru_cache(maxsize=None)
def transformer_pair(family: str = "2b", causal: bool = False, seed: int = 0):
    from ltx_core.model.transformer import Transformer3D, TransformerConfig

    ref, cfg = tt.tiny_reference(family, causal, seed=seed)
    ours = Transformer3D(TransformerConfig.from_dict(cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


@functools.lru_cache(maxsize=None)
def vae_pair(layout: str = "0.9.5", seed: int = 0):
    from ltx_core.model.video_vae import VideoVAE, VideoVAEConfig

    ref, cfg, file_sd = tv.tiny_vae(layout, seed=seed)
    _quiet_encoder_variance_(ref)
    ours = VideoVAE(VideoVAEConfig.from_dict(cfg))
    own = ours.state_dict()
    sd = {k: v for k, v in ref.state_dict().items() if k in own}
    for k in ("std-of-means", "mean-of-means"):
        sd[f"per_channel_statistics.{k}"] = file_sd[f"per_channel_statistics.{k}"]
    ours.load_state_dict(sd, strict=True)
    return ref, ours.eval()


@functools.lru_cache(maxsize=None)
def upsampler_pair(seed: int = 0):
    from ltx_core.model.upsampler import LatentUpsampler, UpsamplerConfig

    ref, cfg = tu.reference_upsampler(seed)
    ours = LatentUpsampler(UpsamplerConfig(**cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


def text(batch: int = 1, seed: int = 0):
    """(prompt embeds, mask, negative embeds, negative mask) with some padded positions."""
    g = torch.Generator().manual_seed(1000 + seed)
    pos = torch.randn(batch, TEXT_LEN, CAPTION_CHANNELS, generator=g)
    neg = torch.randn(batch, TEXT_LEN, CAPTION_CHANNELS, generator=g)
    pm = torch.ones(batch, TEXT_LEN, dtype=torch.long)
    nm = torch.ones(batch, TEXT_LEN, dtype=torch.long)
    pm[:, 9:] = 0
    nm[:, 3:] = 0
    return pos, pm, neg, nm


def reference_pipeline(ref_transformer, ref_vae, scheduler_config: dict):
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier
    from ltx_video.pipelines.pipeline_ltx_video import LTXVideoPipeline
    from ltx_video.schedulers.rf import RectifiedFlowScheduler

    pipe = LTXVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=ref_vae,
        transformer=ref_transformer,
        scheduler=RectifiedFlowScheduler.from_config(dict(scheduler_config)),
        patchifier=SymmetricPatchifier(patch_size=1),
        prompt_enhancer_image_caption_model=None,
        prompt_enhancer_image_caption_processor=None,
        prompt_enhancer_llm_model=None,
        prompt_enhancer_llm_tokenizer=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference_call_kwargs(yaml_dict: dict, seed: int, height: int, width: int, num_frames: int, frame_rate: float,
                          text_inputs, image_cond_noise_scale: float = 0.15, conditioning=None):
    """The keyword arguments `inference.py` passes to the official pipeline for a yaml dict."""
    from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy

    cfg = dict(yaml_dict)
    modes = {"attention_values": SkipLayerStrategy.AttentionValues, "attention_skip": SkipLayerStrategy.AttentionSkip,
             "residual": SkipLayerStrategy.Residual, "transformer_block": SkipLayerStrategy.TransformerBlock}
    strategy = modes[cfg.pop("stg_mode", "attention_values")]
    pos, pm, neg, nm = text_inputs
    return dict(
        **cfg,
        skip_layer_strategy=strategy,
        generator=torch.Generator().manual_seed(seed),
        output_type="latent",
        height=height,
        width=width,
        num_frames=num_frames,
        frame_rate=frame_rate,
        prompt=None,
        negative_prompt=None,
        prompt_embeds=pos,
        prompt_attention_mask=pm,
        negative_prompt_embeds=neg,
        negative_prompt_attention_mask=nm,
        conditioning_items=conditioning,
        is_video=True,
        vae_per_channel_normalize=True,
        image_cond_noise_scale=image_cond_noise_scale,
        mixed_precision=False,
    )
