"""The OpenVINO backend: the transformer and the T5 encoder converted to OpenVINO models (weights fp32, or int8/int4
compressed by NNCF) and run by OpenVINO on its CPU, GPU or AUTO device. `openvino` and `nncf` are optional
dependencies: nothing here imports them until a model is converted or run, and `backend_problem` says how to
install them."""
from .availability import INSTALL_COMMAND, backend_problem
from .settings import OV_DEVICES_HELP, OVSettings
from .text_encoder import OVT5Encoder, openvino_text_encoder
from .transformer import OVTransformer

__all__ = ["INSTALL_COMMAND", "OV_DEVICES_HELP", "OVSettings", "OVT5Encoder", "OVTransformer", "backend_problem",
           "openvino_text_encoder"]
