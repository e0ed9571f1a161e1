"""Write tiny models as official LTX-Video single-file checkpoints (prefixes, metadata JSON)."""
import json

import torch
from safetensors.torch import save_file

import tiny_transformer
import tiny_vae


def save_checkpoint(path, transformer_sd=None, vae_file_sd=None, configs=None, metadata=True, **top_level):
    tensors = {}
    for k, v in (transformer_sd or {}).items():
        tensors["model.diffusion_model." + k] = v.contiguous()
    for k, v in (vae_file_sd or {}).items():
        tensors["vae." + k] = v.contiguous()
    meta = {"config": json.dumps({**(configs or {}), **top_level})} if metadata else None
    save_file(tensors, str(path), metadata=meta)
    return path


def tiny_checkpoint(path, family="2b", vae_layout="0.9.5", ctp=False, metadata=True, transformer_overrides=None,
                    vae_overrides=None, **top_level):
    """Write a tiny official checkpoint; returns (reference transformer, reference VAE, configs)."""
    ref_t, t_cfg = tiny_transformer.tiny_reference(family, ctp, **(transformer_overrides or {}))
    ref_v, v_cfg, v_sd = tiny_vae.tiny_vae(vae_layout, **(vae_overrides or {}))
    # 0.9.1's decoder injects noise; with its learned scales at zero the decode is comparable value for value.
    with torch.no_grad():
        for k, v in ref_v.state_dict().items():
            if "per_channel_scale" in k:
                v.zero_()
                v_sd[k] = torch.zeros_like(v_sd[k])
    configs = {"transformer": t_cfg, "vae": v_cfg,
               "scheduler": {"_class_name": "RectifiedFlowScheduler", "num_train_timesteps": 1000,
                             "shifting": "SD3", "target_shift_terminal": 0.1, "sampler": "LinearQuadratic"}}
    save_checkpoint(path, ref_t.state_dict(), v_sd, configs, metadata=metadata, **top_level)
    return ref_t, ref_v, configs


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()
