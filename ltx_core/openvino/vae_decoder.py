"""The VAE's decoder as OpenVINO runs it, in place of `VideoVAE.decoder`: `VideoVAE.decode` (normalisation, checks,
spatial and temporal tiles) stays torch and calls it once per tile; the encoder stays torch too."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch
from torch import nn

from .export import export_to_openvino
from .graphs import GraphSet
from .runtime import check_device
from .settings import OVSettings

# Export example sizes: all >= 2 (a size of 1 would be specialised into the graph) and unequal (equal example
# sizes could be taken for one size).
_EXAMPLE_BATCH, _EXAMPLE_FRAMES, _EXAMPLE_HEIGHT, _EXAMPLE_WIDTH = 2, 3, 4, 5


class _DecoderGraph(nn.Module):
    """The decoder with the timestep as a positional input (present exactly when the decoder is conditioned)."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, z, *timestep):
        return self.decoder(z, *timestep)


class OVVideoDecoder(nn.Module):
    """`forward(z, timestep=None, generator=None)` as `Decoder.forward`: latents (B, C, F, H, W), un-normalised,
    and for timestep-conditioned decoders (0.9.5+) the (B,) timestep -> pixels, in z's dtype and device. Batch,
    frames, height and width are dynamic: another size or tile never converts again. The graph is read from the disk
    cache, or converted once from `build()` (a float32 torch `Decoder`, freed after).

    int4 weights are made int8: NNCF's int4 takes only matmuls, which in a decoder are the timestep MLPs (a sliver of
    the weights; the convolutions stay int8 either way), and on those it moved the tiny 0.9.5 decode by ~9% where
    int8 moves it by ~2%."""

    injects_noise = False  # `decoder_to_openvino` keeps such decoders on torch

    def __init__(self, timestep_conditioning: bool, source: dict, settings: OVSettings,
                 build: Callable[[], nn.Module]):
        super().__init__()
        check_device(settings.device)
        self.timestep_conditioning, self._build = timestep_conditioning, build
        self.settings = replace(settings, weights="int8") if settings.weights == "int4" else settings
        self._graphs = GraphSet("vae_decoder", source, self.settings)

    @property
    def converted(self) -> list[str]:
        return self._graphs.converted

    def forward(self, z: torch.Tensor, timestep: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        del generator  # no noise to draw (see injects_noise)
        if (timestep is None) == self.timestep_conditioning:
            raise ValueError("this VAE decoder " + ("is timestep-conditioned: pass the (batch,) timestep"
                                                    if self.timestep_conditioning else "takes no timestep"))
        inputs = [z] if timestep is None else [z, timestep.reshape(-1).expand(z.shape[0])]
        return self._graphs.infer("decoder", inputs, self._convert).to(device=z.device, dtype=z.dtype)

    def _convert(self):
        from torch.export import Dim

        decoder = self._build().to("cpu", torch.float32).eval()
        batch = Dim("batch", min=1, max=1024)
        frames, height, width = (Dim(name, min=1, max=1 << 14) for name in ("frames", "height", "width"))
        example = [torch.randn(_EXAMPLE_BATCH, decoder.conv_in.conv.in_channels, _EXAMPLE_FRAMES, _EXAMPLE_HEIGHT,
                               _EXAMPLE_WIDTH)]
        axes = [{0: batch, 2: frames, 3: height, 4: width}]
        if self.timestep_conditioning:
            example.append(torch.full((_EXAMPLE_BATCH,), 0.05))
            axes.append(({0: batch},))  # `_DecoderGraph.forward` takes the timestep as *timestep: a tuple of its own
        return export_to_openvino(_DecoderGraph(decoder), tuple(example), tuple(axes), self._graphs.settings.weights)


def decoder_to_openvino(vae, source: dict, settings: OVSettings, build: Callable[[], nn.Module]) -> str:
    """Put `vae`'s decoder on OpenVINO (its torch weights freed; `build()` gives a float32 `Decoder` for a
    conversion); returns the note saying where it runs. A 0.9.1 decoder stays torch: its noise-injecting blocks
    draw from a torch generator, which a converted graph has no counterpart of."""
    if vae.decoder.injects_noise:
        return ("VAE decoder: torch (it injects noise drawn from a torch generator, the 0.9.1 layout, which OpenVINO "
                "cannot draw)")
    vae.decoder = decoder = OVVideoDecoder(vae.timestep_conditioning, source, settings, build)
    return f"VAE decoder: OpenVINO, {decoder.settings.weights} weights on {decoder.settings.device}"
