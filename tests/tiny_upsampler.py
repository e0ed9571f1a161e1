"""Tiny official latent upsamplers with random weights, saved the way the official files are."""
import json

import torch
from safetensors.torch import save_file


def reference_upsampler(seed=0, **config):
    from ltx_video.models.autoencoders.latent_upsampler import LatentUpsampler

    cfg = dict(in_channels=128, mid_channels=32, num_blocks_per_stage=2, dims=3,
               spatial_upsample=True, temporal_upsample=False)
    cfg.update(config)
    torch.manual_seed(seed)
    model = LatentUpsampler(**cfg).eval()
    with torch.no_grad():
        # Norm affines left at 1/0 would hide a swapped weight and bias.
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
            else:
                p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
    return model, cfg


def save_official(model, cfg, path, with_metadata=True):
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps({"_class_name": "LatentUpsampler", **cfg})} if with_metadata else None
    save_file(sd, str(path), metadata=meta)
    return path
