"""The OpenVINO backend: the transformer, the T5 encoder and the VAE decoder converted to OpenVINO models (weights
fp32, or int8/int4 compressed by NNCF) and run by OpenVINO on its CPU, GPU or AUTO device. `openvino` and `nncf` are
optional dependencies: nothing here imports them until a model is converted or run, and `backend_problem` says how
to install them."""
from .availability import INSTALL_COMMAND, backend_problem
from .settings import OV_DEVICES_HELP, OVSettings
from .text_encoder import OVT5Encoder, openvino_text_encoder
from .transformer import OVTransformer
from .vae_decoder import OVVideoDecoder, decoder_to_openvino

__all__ = ["INSTALL_COMMAND", "OV_DEVICES_HELP", "OVSettings", "OVT5Encoder", "OVTransformer", "OVVideoDecoder",
           "backend_problem", "decoder_to_openvino", "openvino_text_encoder"]
