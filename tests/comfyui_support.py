"""Helpers for tests/test_comfyui_server.py: a real ComfyUI server with this node pack, tiny models under the
official file names, input media, a stdlib HTTP/WebSocket client, and shrinking the API workflows. Also stand-ins for
the ComfyUI modules the bridge uses (`fake_comfyui`), as ComfyUI 0.3.64 and 0.38 behave, for tests without a server.

Everything talks to 127.0.0.1 only. See tests/README_integration.md for how to run it.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from node_pack import submodule

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_API_DIR = REPO / "workflows" / "api"
PACK_DIR_NAME = "ComfyUI-LTXVideo-stack-under-test"

# Tiny models: sizes are tiny, names and layouts are the official ones the workflows refer to.
T5_FILE = "t5xxl_fp16.safetensors"
UPSAMPLER_FILE = "ltxv-spatial-upscaler-0.9.8.safetensors"
UPSAMPLER_FILES = (UPSAMPLER_FILE, "ltxv-spatial-upscaler-0.9.7.safetensors")
CHECKPOINTS = {
    # file name: (family, causal temporal positioning). 2B recipes use STG block 19, so the 2B ones get 20 blocks.
    "ltxv-2b-0.9.6-dev-04-25.safetensors": ("2b", False, 20),
    "ltxv-2b-0.9.6-distilled-04-25.safetensors": ("2b", False, 20),
    "ltxv-13b-0.9.8-distilled.safetensors": ("13b", True, 3),
    "ltxv-13b-0.9.7-dev.safetensors": ("13b", True, 3),
    "ltxv-13b-0.9.7-distilled.safetensors": ("13b", True, 3),
}
# GGUF transformers (diffusion_models): file name -> blocks. GGUF files carry no head count (the loader takes the 32
# heads of every release), so these have 32 heads of 2: every quantized row is whole Q8_0 blocks. 3 blocks like the
# 13B checkpoints above (the distilled recipe's skip_block_list only matters with STG, which it leaves off).
GGUF_FILES = {"LTXV-13B-0.9.8-distilled-Q4_K_M.gguf": 3}
VAE_FILES = ("LTXV-13B-0.9.8-distilled-VAE.safetensors",)  # VAE files (vae) of the 0.9.5+ generation
# LoRA file name: IC-LoRA metadata (None for a plain LoRA); made for the tiny 13B checkpoints above.
LORAS = {"ltxv-13b-0.9.7-distilled-lora128.safetensors": None,
         "ltxv-097-ic-lora-pose-control-comfyui.safetensors": {"reference_downscale_factor": "1"}}
INPUT_IMAGES = {"example.png": (180, 120, 0), "first_frame.png": (100, 72, 1), "last_frame.png": (100, 72, 2)}
INPUT_CLIP = "input_clip.mp4"
INPUT_CLIP_FRAMES, INPUT_CLIP_SIZE, INPUT_CLIP_FPS = 10, (96, 64), 24
INPUT_CONTROL = "pose.mp4"  # the IC-LoRA workflow's control video: as long as the shrunk video (17 frames)
INPUT_CONTROL_FRAMES = 17


# ----------------------------------------------------------------------------------------------------------------
# files


def write_tiny_models(root: Path, seed: int = 0) -> dict:
    """models/{checkpoints,text_encoders,latent_upscale_models,loras,diffusion_models,vae} under `root` with tiny
    models saved under the official names (GGUF and VAE files under their Hugging Face repos' names). The single-file
    T5 gets no tokenizer next to it: inside ComfyUI the pack must find ComfyUI's bundled
    comfy/text_encoders/t5_tokenizer. Needs the official implementation (ltx_video) for the factories, and gguf."""
    import official_files
    import tiny_t5
    import tiny_upsampler
    import torch

    dirs = {d: root / d for d in ("checkpoints", "text_encoders", "latent_upscale_models", "loras",
                                  "diffusion_models", "vae")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    te = tiny_t5.tiny_t5(seed)
    tiny_t5.save_single(tiny_t5.encoder_state(te, torch.float16), dirs["text_encoders"] / T5_FILE)
    for i, (name, (family, ctp, layers)) in enumerate(CHECKPOINTS.items()):
        torch.manual_seed(seed + i)
        official_files.tiny_checkpoint(dirs["checkpoints"] / name, family=family, vae_layout="0.9.5", ctp=ctp,
                                       transformer_overrides={"caption_channels": te.config.d_model,
                                                              "num_layers": layers})
    up, cfg = tiny_upsampler.reference_upsampler(seed)
    for name in UPSAMPLER_FILES:
        tiny_upsampler.save_official(up, cfg, dirs["latent_upscale_models"] / name)
    _write_tiny_loras(dirs["loras"], dirs["checkpoints"] / "ltxv-13b-0.9.7-dev.safetensors")
    _write_tiny_gguf_and_vae(dirs["diffusion_models"], dirs["vae"], te.config.d_model, seed)
    return {k: str(v) for k, v in dirs.items()}


def _write_tiny_gguf_and_vae(model_folder: Path, vae_folder: Path, caption_channels: int, seed: int) -> None:
    import tiny_gguf
    import tiny_transformer
    import tiny_vae
    from safetensors.torch import save_file

    for i, (name, layers) in enumerate(GGUF_FILES.items()):
        ref, _ = tiny_transformer.tiny_reference("13b", True, seed=seed + i, num_attention_heads=32,
                                                 attention_head_dim=2, cross_attention_dim=64,
                                                 caption_channels=caption_channels, num_layers=layers)
        tiny_gguf.write_gguf(model_folder / name, ref.state_dict(), "Q8_0")
    _, cfg, sd = tiny_vae.tiny_vae("0.9.5", seed)
    for name in VAE_FILES:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(vae_folder / name),
                  metadata={"config": json.dumps({"vae": cfg})})


def _write_tiny_loras(folder: Path, checkpoint: Path) -> None:
    import tiny_lora

    from ltx_core import load_checkpoint

    transformer = load_checkpoint(checkpoint).transformer
    for i, (name, metadata) in enumerate(LORAS.items()):
        tiny_lora.write_lora(folder / name, tiny_lora.random_lora(transformer, rank=2, seed=i), "comfyui",
                             metadata=metadata)


def write_extra_model_paths(path: Path, models_root: Path, custom_nodes_dir: Path) -> Path:
    """An extra_model_paths.yaml serving the tiny models and this pack (ComfyUI reads it before custom nodes)."""
    text = (
        "ltxv_stack_integration_test:\n"
        f"    base_path: {json.dumps(str(models_root))}\n"
        "    checkpoints: checkpoints\n"
        "    text_encoders: text_encoders\n"
        "    latent_upscale_models: latent_upscale_models\n"
        "    loras: loras\n"
        "    diffusion_models: diffusion_models\n"
        "    vae: vae\n"
        f"    custom_nodes: {json.dumps(str(custom_nodes_dir))}\n"
    )
    path.write_text(text)
    return path


def link_pack(custom_nodes_dir: Path) -> Path:
    """custom_nodes_dir/<name> -> the repository (a symlink; a copy where links are not allowed)."""
    custom_nodes_dir.mkdir(parents=True, exist_ok=True)
    target = custom_nodes_dir / PACK_DIR_NAME
    try:
        target.symlink_to(REPO, target_is_directory=True)
    except OSError:
        import shutil

        shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache"))
    return target


def png_bytes(width: int, height: int, seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                     np.full_like(xx, 40 + 60 * seed)], -1)
    img = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def mp4_bytes(frames: int, width: int, height: int, fps: int) -> bytes:
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = (np.arange(width) * 255 // width)[None, :]
            img[..., 1] = (30 + 20 * i) % 256
            img[: height // 2, (i * 7) % width:, 2] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def probe_video(path: Path) -> dict:
    """Decode a video with PyAV: frame count (decoded, not the header's), width, height, frame rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count, size = 0, None
        for frame in container.decode(stream):
            count += 1
            size = (frame.width, frame.height)
        rate = stream.average_rate or stream.guessed_rate
    return {"frames": count, "width": size[0] if size else 0, "height": size[1] if size else 0,
            "fps": float(rate) if rate else None}


# ----------------------------------------------------------------------------------------------------------------
# workflows


def load_api_workflows() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(WORKFLOW_API_DIR.glob("*.json"))}


def nodes_of(api: dict, *class_types: str) -> list[tuple[str, dict]]:
    return [(k, v) for k, v in api.items() if v["class_type"] in class_types]


SAMPLERS = ("LTXVStackSampler", "LTXVStackLongSampler")
# A long-video sampler shrunk: 57 frames (8 latent frames) in chunks of 25 (4) sharing 16 (2), so 3 chunks: it
# still goes chunk by chunk (per-chunk prompts and seeds, overlap, cross-fade), and quickly.
LONG_VIDEO = {"num_frames": 57, "tile_frames": 25, "overlap_frames": 16}
LONG_VIDEO_CHUNKS = 3


def shrink(api: dict, width=96, height=64, num_frames=17, steps=3) -> dict:
    """A copy of an API graph with a tiny video size and few steps; the graph itself is unchanged. Recipes with an
    explicit timestep list (distilled) keep theirs (steps 0). A long-video sampler gets LONG_VIDEO's frames and
    chunks instead of `num_frames`."""
    import copy

    official = submodule("ltx_core.presets.official").OFFICIAL_CONFIGS
    api = copy.deepcopy(api)
    for _, node in nodes_of(api, *SAMPLERS):
        inputs = node["inputs"]
        preset = official.get(inputs.get("preset"), {})
        passes = [preset.get("first_pass", {}), preset.get("second_pass", {}), preset]
        explicit = any(p.get("timesteps") for p in passes)
        inputs.update(width=width, height=height, num_frames=num_frames, steps=0 if explicit else steps)
        if node["class_type"] == "LTXVStackLongSampler":
            inputs.update(LONG_VIDEO)
    return api


def expected_video(api: dict) -> dict:
    """What the (single) sampler of a shrunk graph should produce: frames, width, height."""
    (_, sampler), = nodes_of(api, *SAMPLERS)
    i = sampler["inputs"]
    return {"frames": i["num_frames"], "width": i["width"], "height": i["height"]}


# ----------------------------------------------------------------------------------------------------------------
# a minimal WebSocket client (RFC 6455, client side), stdlib only


class WebSocketClosed(ConnectionError):
    pass


class WebSocket:
    _GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, host: str, port: int, path: str, timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise ConnectionError(f"WebSocket upgrade refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        accept = base64.b64encode(hashlib.sha1((key + self._GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise ConnectionError("WebSocket upgrade: bad Sec-WebSocket-Accept")

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("WebSocket: timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("WebSocket: timed out waiting for data") from None
        if not chunk:
            raise WebSocketClosed("WebSocket: connection closed by the server")
        self.buf += chunk

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes = b"") -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv(self, timeout: float):
        """The next data message: a dict for a JSON text message, bytes for a binary one (previews)."""
        deadline = time.monotonic() + timeout
        message, kind = b"", None
        while True:
            b0, b1 = self._take(2, deadline)
            fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._take(2, deadline))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._take(8, deadline))[0]
            mask = self._take(4, deadline) if b1 & 0x80 else None
            payload = self._take(n, deadline)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise WebSocketClosed("WebSocket: the server closed the connection")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode in (0x1, 0x2):
                kind, message = opcode, payload
            else:  # continuation
                message += payload
            if fin:
                return json.loads(message.decode()) if kind == 0x1 else message

    def close(self) -> None:
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


# ----------------------------------------------------------------------------------------------------------------
# the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HTTPError(RuntimeError):
    def __init__(self, status: int, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class ComfyServer:
    """`python main.py --cpu ...` of a ComfyUI checkout in a subprocess, with every directory it writes to
    (base, user, input, output, temp, database) under `work`, so the checkout is not changed."""

    def __init__(self, comfy_path: Path, python: str, work: Path, extra_model_paths: Path):
        self.comfy_path, self.python, self.work = Path(comfy_path), python, Path(work)
        self.host, self.port = "127.0.0.1", free_port()
        self.input_dir, self.output_dir = self.work / "input", self.work / "output"
        self.base_dir, self.user_dir = self.work / "base", self.work / "base" / "user"
        for d in (self.input_dir, self.output_dir, self.user_dir, self.base_dir / "custom_nodes"):
            d.mkdir(parents=True, exist_ok=True)
        self.log_path = self.work / "comfyui.log"
        self.cmd = [python, "-u", "main.py", "--cpu", "--listen", self.host, "--port", str(self.port),
                    "--extra-model-paths-config", str(extra_model_paths),
                    "--output-directory", str(self.output_dir), "--input-directory", str(self.input_dir),
                    "--base-directory", str(self.base_dir), "--user-directory", str(self.user_dir),
                    "--temp-directory", str(self.work / "temp"), "--database-url", "sqlite:///:memory:",
                    "--disable-api-nodes", "--disable-auto-launch"]
        self.proc = None
        self._log = None

    # process
    def start(self, timeout: float) -> None:
        env = dict(os.environ)
        env.pop("LTXV_STACK_STANDALONE", None)  # the pack must use ComfyUI, not its stand-ins
        # no __pycache__ written into the checkout (or the pack); nothing reaches for a model hub
        env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   DO_NOT_TRACK="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (open while the server runs; closed in stop())
        self.proc = subprocess.Popen(self.cmd, cwd=self.comfy_path, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.proc.returncode} while starting:\n"
                                   f"{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=5)
                return
            except (OSError, HTTPError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def rss_bytes(self) -> int:
        """The server process's resident memory now (VmRSS of /proc/<pid>/status, Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS in /proc/{self.proc.pid}/status")

    # HTTP
    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _request(self, req, timeout):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                body = json.loads(body)
            except ValueError:
                body = body.decode(errors="replace")
            raise HTTPError(e.code, body) from None

    def get(self, path: str, timeout: float = 30) -> bytes:
        return self._request(urllib.request.Request(self.url(path)), timeout)

    def get_json(self, path: str, timeout: float = 30):
        return json.loads(self.get(path, timeout))

    def post_json(self, path: str, data, timeout: float = 30):
        req = urllib.request.Request(self.url(path), data=json.dumps(data).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        body = self._request(req, timeout)
        return json.loads(body) if body.strip() else None

    def upload(self, name: str, data: bytes, timeout: float = 30) -> dict:
        """POST /upload/image (multipart): the file lands in the input directory under `name`."""
        boundary = uuid.uuid4().hex
        parts = []
        for field, value in (("overwrite", "true"), ("type", "input")):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'.encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        req = urllib.request.Request(self.url("/upload/image"), data=b"".join(parts), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return json.loads(self._request(req, timeout))

    def view(self, item: dict, timeout: float = 30) -> bytes:
        query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                        "type": item.get("type", "output")})
        return self.get(f"/view?{query}", timeout)

    # prompts
    def websocket(self, client_id: str, timeout: float = 30) -> WebSocket:
        return WebSocket(self.host, self.port, f"/ws?clientId={client_id}", timeout)

    def queue(self, prompt: dict, client_id: str) -> str:
        """POST /prompt; returns the prompt id (HTTPError with the server's error and node_errors on rejection)."""
        out = self.post_json("/prompt", {"prompt": prompt, "client_id": client_id})
        assert not out.get("node_errors"), out
        return out["prompt_id"]

    def wait(self, ws: WebSocket, prompt_id: str, timeout: float, on_message=None) -> dict:
        """Follow a prompt over the WebSocket until `executing` with node None (the prompt is done). Returns
        {"outcome": "success"|"error"|"interrupted"|None, "messages": [...], "executed": [...nodes]}."""
        deadline = time.monotonic() + timeout
        result = {"outcome": None, "messages": [], "executed": [], "error": None}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.alive():
                state = "ComfyUI exited" if not self.alive() else f"timed out after {timeout:.0f} s"
                raise TimeoutError(f"prompt {prompt_id}: {state}; messages so far "
                                   f"{[m['type'] for m in result['messages']][-20:]}\n{self.log_tail()}")
            try:
                msg = ws.recv(min(remaining, 5.0))
            except TimeoutError:
                continue
            if not isinstance(msg, dict):
                continue  # binary preview frames
            data = msg.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            result["messages"].append(msg)
            if on_message is not None:
                on_message(msg)
            kind = msg.get("type")
            if kind == "execution_success":
                result["outcome"] = "success"
            elif kind == "execution_error":
                result["outcome"], result["error"] = "error", data
            elif kind == "execution_interrupted":
                result["outcome"] = "interrupted"
            elif kind == "executed":
                result["executed"].append(data.get("node"))
            elif kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return result

    def history(self, prompt_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            h = self.get_json(f"/history/{prompt_id}")
            if prompt_id in h:
                return h[prompt_id]
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} never reached /history")
            time.sleep(0.2)

    def run(self, prompt: dict, timeout: float) -> tuple[dict, dict]:
        """Queue `prompt`, follow it to the end; returns (WebSocket result, history entry)."""
        client_id = uuid.uuid4().hex
        ws = self.websocket(client_id)
        try:
            prompt_id = self.queue(prompt, client_id)
            result = self.wait(ws, prompt_id, timeout)
        finally:
            ws.close()
        return result, self.history(prompt_id)



START_TIMEOUT = 300  # first start on 2 cores: torch + ComfyUI's nodes + this pack


def serve(tmp_path_factory, comfyui_path: str, start_timeout: float = START_TIMEOUT):
    """The body of a module-scoped `server` fixture (`yield from cs.serve(tmp_path_factory, COMFYUI_PATH)`): tiny
    models, this pack linked into a temporary custom_nodes folder, ComfyUI started with COMFYUI_PYTHON (else this
    interpreter) and the input media uploaded; yields the ComfyServer, stops it afterwards."""
    import sys

    import pytest

    comfy = Path(comfyui_path).expanduser().resolve()
    if not (comfy / "main.py").is_file() or not (comfy / "comfy").is_dir():
        pytest.fail(f"COMFYUI_PATH={comfyui_path} is not a ComfyUI checkout (no main.py / comfy/)")
    pytest.importorskip("ltx_video", reason="the tiny model factories need the official implementation (ltx_video)")
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable

    work = tmp_path_factory.mktemp("comfyui")
    write_tiny_models(work / "models")
    custom_nodes = work / "custom_nodes"
    link = link_pack(custom_nodes)
    yaml = write_extra_model_paths(work / "extra_model_paths.yaml", work / "models", custom_nodes)
    srv = ComfyServer(comfy, python, work, yaml)
    try:
        srv.start(start_timeout)
        for name, (w, h, seed) in INPUT_IMAGES.items():
            assert srv.upload(name, png_bytes(w, h, seed))["name"] == name
        clip = mp4_bytes(INPUT_CLIP_FRAMES, *INPUT_CLIP_SIZE, INPUT_CLIP_FPS)
        assert srv.upload(INPUT_CLIP, clip)["name"] == INPUT_CLIP
        control = mp4_bytes(INPUT_CONTROL_FRAMES, *INPUT_CLIP_SIZE, INPUT_CLIP_FPS)
        assert srv.upload(INPUT_CONTROL, control)["name"] == INPUT_CONTROL
        yield srv
    finally:
        srv.stop()
        if link.is_symlink():
            link.unlink()


# ----------------------------------------------------------------------------------------------------------------
# stand-ins for ComfyUI's modules (no server): what the bridge calls, as ComfyUI 0.3.64 and 0.38 behave

GIB = 1 << 30


def fake_comfyui(monkeypatch, tmp_path, *, version: str = "0.3.64", gpu_free: int = GIB, reclaimable: int = 0):
    """Install stand-ins for folder_paths, comfy.*, latent_preview, server and comfy_execution, and load a second
    copy of the bridge that sees them. Returns (bridge, folder_paths, model_management, state, calls).

    version "0.3.64": plain ModelPatcher, text encoders on the CPU, every progress update sent, the interrupt an
    Exception. "0.38" (dynamic VRAM on, as on an NVIDIA GPU): comfy.memory_management.aimdo_enabled,
    text_encoder_device() is the GPU ("cuda"; nothing is moved there, loads are only recorded),
    mm.get_free_memory leaves out the `reclaimable` bytes dynamic VRAM can take back while
    ModelPatcher.get_free_memory(device) adds them, ProgressBar sends only a bar's first and last update (and
    previews), as when updates come faster than its 0.1 s throttle, and the interrupt is a BaseException.
    `gpu_free`: what mm.get_free_memory answers for the GPU."""
    import importlib.util
    import sys
    import types

    import torch

    from node_pack import PACK

    if version not in ("0.3.64", "0.38"):
        raise ValueError(f"version must be 0.3.64 or 0.38, got {version!r}")
    new = version == "0.38"
    calls = {"load": [], "progress": [], "unloaded": 0, "text": []}
    state = {"interrupted": False, "running_node": "7", "reclaimable": reclaimable, "gpu_free": gpu_free}
    cpu, gpu = torch.device("cpu"), torch.device("cuda")

    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path)
    fp.supported_pt_extensions = {".safetensors", ".ckpt"}
    fp.folder_names_and_paths = {"checkpoints": ([str(tmp_path / "checkpoints")], fp.supported_pt_extensions)}
    fp.get_folder_paths = lambda name: fp.folder_names_and_paths[name][0]

    mm = types.ModuleType("comfy.model_management")
    # a BaseException since ComfyUI PR #13523 (0.3.7x): `except Exception` no longer catches it
    mm.InterruptProcessingException = type("InterruptProcessingException", (BaseException if new else Exception,), {})
    mm.OOM_EXCEPTION = torch.OutOfMemoryError
    for name in ("get_torch_device", "unet_offload_device", "vae_device", "vae_offload_device",
                 "text_encoder_offload_device", "intermediate_device"):
        setattr(mm, name, lambda: cpu)
    mm.text_encoder_device = lambda: gpu if new else cpu
    mm.should_use_bf16 = lambda device=None: True
    mm.vae_dtype = lambda device=None, allowed_dtypes=(): torch.bfloat16
    mm.get_free_memory = lambda dev=None, torch_free_too=False: state["gpu_free"] if getattr(dev, "type", "") == "cuda" \
        else GIB
    mm.soft_empty_cache = lambda force=False: None
    mm.current_loaded_models = []

    class Loaded:
        def __init__(self, patcher):
            self.model = patcher

        def model_unload(self, memory_to_free=None, unpatch_weights=True):
            calls["unloaded"] += 1
            return True

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False):
        calls["load"].append((list(models), memory_required, force_full_load))
        for p in models:
            if p.load_device.type == "cpu":  # no GPU here: a load onto "cuda" is only recorded
                p.model.to(p.load_device)
                p.model.device = p.load_device  # what ModelPatcher.load does
            mm.current_loaded_models.insert(0, Loaded(p))

    mm.load_models_gpu = load_models_gpu
    mm.processing_interrupted = lambda: state["interrupted"]

    def throw():
        if state["interrupted"]:
            state["interrupted"] = False
            raise mm.InterruptProcessingException()

    mm.throw_exception_if_processing_interrupted = throw

    mp = types.ModuleType("comfy.model_patcher")

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            for attr, default in (("model_loaded_weight_memory", 0), ("lowvram_patch_counter", 0),
                                  ("model_lowvram", False), ("current_weight_patches_uuid", None)):
                if not hasattr(model, attr):
                    setattr(model, attr, default)

    if new:
        def get_free_memory(self, device):
            return mm.get_free_memory(device) + (state["reclaimable"] if device.type == "cuda" else 0)

        ModelPatcher.get_free_memory = get_free_memory
    mp.ModelPatcher = ModelPatcher

    cu = types.ModuleType("comfy.utils")

    def hook(value, total, preview, node_id=None):
        throw()  # as ComfyUI's progress hook does
        calls["progress"].append((value, total, preview))

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total, self.sent = total, False

        def update_absolute(self, value, total=None, preview=None):
            if total is not None:
                self.total = total
            value = min(value, self.total)
            if not new or not self.sent or value >= self.total or preview is not None:
                self.sent = True
                hook(value, self.total, preview)

    cu.ProgressBar = ProgressBar
    lf = types.ModuleType("comfy.latent_formats")
    lf.LTXV = type("LTXV", (), {})
    lp = types.ModuleType("latent_preview")

    class Previewer:
        def decode_latent_to_preview_image(self, fmt, x0):
            assert x0.dim() == 4 and x0.shape[:2] == (1, 128)
            return (fmt, "image", 512)

    lp.get_previewer = lambda device, fmt: Previewer()

    server = types.ModuleType("server")

    class PromptServer:
        instance = None
        last_node_id = "stale"

        def send_progress_text(self, text, node_id, sid=None):
            calls["text"].append((text, node_id))

    PromptServer.instance = PromptServer()
    server.PromptServer = PromptServer
    ce = types.ModuleType("comfy_execution")
    ce.__path__ = []
    ceu = types.ModuleType("comfy_execution.utils")
    context = type("ExecutionContext", (), {})
    ceu.get_executing_context = lambda: (setattr(context, "node_id", state["running_node"]) or context) \
        if state["running_node"] else None

    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    comfy.model_management, comfy.model_patcher, comfy.utils, comfy.latent_formats = mm, mp, cu, lf
    modules = {"folder_paths": fp, "comfy": comfy, "comfy.model_management": mm, "comfy.model_patcher": mp,
               "comfy.utils": cu, "comfy.latent_formats": lf, "latent_preview": lp, "server": server,
               "comfy_execution": ce, "comfy_execution.utils": ceu}
    if new:
        mem = types.ModuleType("comfy.memory_management")
        mem.aimdo_enabled = True
        comfy.memory_management = modules["comfy.memory_management"] = mem
    else:
        monkeypatch.delitem(sys.modules, "comfy.memory_management", raising=False)
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delenv("LTXV_STACK_STANDALONE", raising=False)
    # A second copy of the bridge, inside the pack so its relative imports resolve, that sees the fakes.
    spec = importlib.util.spec_from_file_location(f"{PACK}.nodes.bridge_in_comfyui", REPO / "nodes" / "comfy_bridge.py")
    b = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(b)
    return b, fp, mm, state, calls
