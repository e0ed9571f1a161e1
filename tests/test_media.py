"""Conditioning media preparation against the official implementation (ltx-video 0.1.2, `inference.py`).

`ltx_video.inference` imports torchvision (gaussian_blur, to_tensor) and imageio (video reading), neither of which
is installed here (there is no CPU torchvision build for this torch). The oracle is imported with two minimal
stand-ins, written here from torchvision's and imageio's documented behaviour:
- `to_tensor`: HWC uint8 -> CHW float / 255; `gaussian_blur`: the kernel exp(-x^2/(2 sigma^2)) on
  linspace(-(k-1)/2, (k-1)/2, k), normalised, outer product, reflect padding, depthwise conv2d;
- `imageio.get_reader`: count_frames()/get_data(i)/close() over PyAV's rgb24 frames.
Everything else (crop arithmetic, PIL resize, the PyAV H.264 round trip, scaling, padding, trimming) is the
official code. The blur is also checked separately against a plain numpy computation.
"""
import importlib
import sys
import types

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ltx_core.conditioning import media as M
from ltx_core.video_io import write_mp4


# ----------------------------------------------------------------------------------------------------------------
# the oracle


def _tv_gaussian_blur(img, kernel_size, sigma):
    k = kernel_size[0] if isinstance(kernel_size, (list, tuple)) else kernel_size
    s = sigma[0] if isinstance(sigma, (list, tuple)) else sigma
    half = (k - 1) * 0.5
    x = torch.linspace(-half, half, steps=k)
    pdf = torch.exp(-0.5 * (x / s).pow(2))
    k1 = pdf / pdf.sum()
    k2 = torch.mm(k1[:, None], k1[None, :]).to(img.dtype)
    c = img.shape[-3]
    out = F.conv2d(F.pad(img[None], [k // 2] * 4, mode="reflect"), k2.expand(c, 1, k, k), groups=c)
    return out[0]


def _tv_to_tensor(pic):
    a = torch.from_numpy(np.array(pic, copy=True))
    return a.view(pic.size[1], pic.size[0], len(pic.getbands())).permute(2, 0, 1).contiguous().float().div(255)


class _PyAVReader:
    def __init__(self, path):
        with av.open(str(path)) as c:
            self._frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    def count_frames(self):
        return len(self._frames)

    def get_data(self, i):
        return self._frames[i]

    def close(self):
        pass


@pytest.fixture(scope="module")
def ref():
    mod = sys.modules.get("ltx_video.inference")
    if mod is not None:
        return mod
    pytest.importorskip("ltx_video")
    # Let the libraries that probe for torchvision do so before the stand-ins exist.
    import diffusers.utils  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer, T5EncoderModel, T5Tokenizer  # noqa

    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    fn.to_tensor, fn.gaussian_blur = _tv_to_tensor, _tv_gaussian_blur
    tv.transforms, tr.functional = tr, fn
    io_mod = types.ModuleType("imageio")
    io_mod.get_reader = _PyAVReader
    shims = {"torchvision": tv, "torchvision.transforms": tr, "torchvision.transforms.functional": fn}
    if importlib.util.find_spec("imageio") is None:
        shims["imageio"] = io_mod
    saved = {k: sys.modules.get(k) for k in shims}
    sys.modules.update(shims)
    try:
        mod = importlib.import_module("ltx_video.inference")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    mod.imageio = io_mod  # always read videos with PyAV, as ltx_core does
    return mod


# ----------------------------------------------------------------------------------------------------------------
# test media


def _smooth_image(h, w, seed=0):
    """A natural-ish picture: smooth gradients plus texture, so the codec has real work to do."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(xx / (7 + 3 * c) + yy / (11 + c) + c) for c in range(3)
    ], -1) + g.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    out = {}
    for name, (h, w) in {"wide": (60, 101), "tall": (97, 45), "small": (21, 30), "square": (64, 64)}.items():
        p = d / f"{name}.png"
        Image.fromarray(_smooth_image(h, w, seed=h * w)).save(p)
        out[name] = p
    jpg = d / "photo.jpg"
    Image.fromarray(_smooth_image(75, 90, seed=3)).save(jpg, quality=90)
    out["jpg"] = jpg
    frames = np.stack([np.roll(_smooth_image(40, 56, seed=5), 3 * i, axis=1) for i in range(11)])
    out["video"] = write_mp4(d / "clip.mp4", frames, 24)
    return out


CASES = [  # (file, height, width, just_crop)
    ("wide", 48, 64, False),     # crop the sides, downscale
    ("tall", 48, 64, False),     # crop top/bottom, upscale width
    ("small", 96, 128, False),   # upscale
    ("square", 32, 96, False),   # extreme aspect
    ("jpg", 50, 70, False),      # 50x70: padding needed later, even sizes
    ("wide", 45, 63, False),     # odd target: the codec step trims to even
    ("tall", 48, 64, True),      # just crop (conditioning items)
    ("wide", 64, 48, True),
    ("square", 40, 56, True),
]


@pytest.mark.parametrize("name,h,w,just_crop", CASES)
def test_image_matches_reference(ref, files, name, h, w, just_crop):
    ours = M.load_media(files[name], h, w, just_crop=just_crop)
    theirs = ref.load_image_to_tensor_with_resize_and_crop(str(files[name]), h, w, just_crop=just_crop)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert ours.shape[:3] == (1, 3, 1)
    err = (ours - theirs).abs().max().item()
    assert err == 0.0, f"max abs error {err}"
    assert -1.0 <= ours.min() and ours.max() <= 1.0


@pytest.mark.parametrize("h,w,just_crop,max_frames", [(32, 48, False, 9), (50, 70, True, 5)])
def test_video_matches_reference_load_media_file(ref, files, h, w, just_crop, max_frames):
    ph, pw, _ = M.padded_size(h, w, 9)
    padding = ref.calculate_padding(h, w, ph, pw)
    theirs = ref.load_media_file(str(files["video"]), h, w, max_frames, padding, just_crop=just_crop)
    ours = M.pad_media(M.load_media(files["video"], h, w, max_frames=max_frames, just_crop=just_crop), h, w)
    assert ours.shape == theirs.shape
    assert ours.shape[2] == max_frames
    assert (ours - theirs).abs().max().item() == 0.0


def test_image_padding_matches_reference(ref, files):
    h, w = 50, 70
    ph, pw, _ = M.padded_size(h, w, 1)
    assert (ph, pw) == (64, 96)
    theirs = ref.load_media_file(str(files["jpg"]), h, w, 1, ref.calculate_padding(h, w, ph, pw), just_crop=True)
    ours = M.pad_media(M.load_media(files["jpg"], h, w, just_crop=True), h, w)
    assert ours.shape == theirs.shape and (ours - theirs).abs().max().item() == 0.0


def test_crf_compress_matches_reference(ref):
    from ltx_video.pipelines import crf_compressor

    img = torch.from_numpy(_smooth_image(37, 51, seed=9)).float() / 255.0  # odd sizes: trimmed to even
    theirs = crf_compressor.compress(img)
    ours = M.crf_compress(img)
    assert ours.shape == theirs.shape == (36, 50, 3)
    assert (ours - theirs).abs().max().item() == 0.0
    # channels-first input gives the same pixels in its own layout
    chw = M.crf_compress(img.permute(2, 0, 1))
    assert torch.equal(chw.permute(1, 2, 0), ours)
    # another CRF, and crf=0 is the identity
    assert torch.equal(M.crf_compress(img, 40), crf_compressor.compress(img, crf=40))
    assert M.crf_compress(img, 0) is img
    # it is lossy but close
    assert 0 < (ours - img[:36, :50]).abs().mean() < 0.05


def test_blur_against_numpy():
    g = np.random.default_rng(1)
    img = g.random((3, 9, 11)).astype(np.float64)
    x = np.arange(-1, 2, dtype=np.float64)
    k = np.exp(-0.5 * x ** 2)
    k /= k.sum()
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    want = sum(k[i] * k[j] * p[:, i:i + 9, j:j + 11] for i in range(3) for j in range(3))
    got = M.blur(torch.from_numpy(img).float()).double().numpy()
    assert np.abs(got - want).max() < 1e-6


def test_trim_to_valid_frames_matches_reference():
    from ltx_video.pipelines.pipeline_ltx_video import LTXVideoPipeline

    fake = types.SimpleNamespace(video_scale_factor=8)
    for n in range(1, 60):
        assert M.trim_to_valid_frames(n) == LTXVideoPipeline.trim_conditioning_sequence(fake, 0, n, 10 ** 6)
        assert (M.trim_to_valid_frames(n) - 1) % 8 == 0 and M.trim_to_valid_frames(n) <= n
    assert [M.trim_to_valid_frames(n) for n in (1, 8, 9, 16, 17, 121)] == [1, 1, 9, 9, 17, 121]
    with pytest.raises(ValueError):
        M.trim_to_valid_frames(0)


def test_padding_helpers_match_reference(ref):
    for h, w in [(704, 1216), (480, 704), (50, 70), (33, 31), (1, 1)]:
        ph, pw, _ = M.padded_size(h, w, 9)
        assert ph % 32 == 0 and pw % 32 == 0 and 0 <= ph - h < 32 and 0 <= pw - w < 32
        assert M.calculate_padding(h, w, ph, pw) == ref.calculate_padding(h, w, ph, pw)
    for f, want in [(1, 1), (2, 9), (9, 9), (10, 17), (121, 121), (120, 121)]:
        assert M.padded_size(32, 32, f)[2] == want


def test_prepare_frames_equals_files(files):
    """ComfyUI IMAGE tensors (f,H,W,3) in [0,1] and (1,3,f,H,W) tensors give what the file gives."""
    with Image.open(files["wide"]) as im:
        arr = np.array(im.convert("RGB"))
    want = M.load_media(files["wide"], 48, 64)
    comfy = torch.from_numpy(arr).float()[None] / 255.0
    assert torch.equal(M.prepare_frames(comfy, 48, 64), want)
    assert torch.equal(M.prepare_frames(torch.from_numpy(arr)[None], 48, 64), want)  # uint8
    assert torch.equal(M.prepare_frames(comfy.permute(3, 0, 1, 2)[None], 48, 64), want)  # (1,3,f,H,W)
    vid, _ = __import__("video_files").read_video_frames(files["video"])
    assert torch.equal(M.prepare_frames(torch.from_numpy(vid[:3]).float() / 255, 32, 48, just_crop=True),
                       M.load_media(files["video"], 32, 48, max_frames=3, just_crop=True))
    # no blur, no codec: plain crop/resize/scale
    plain = M.prepare_frames(comfy, 48, 64, blur=False, crf=0)
    assert plain.shape == (1, 3, 1, 48, 64) and not torch.equal(plain, want)


def test_gif_and_max_frames(tmp_path):
    frames = [Image.fromarray(_smooth_image(24, 32, seed=i)) for i in range(5)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert M.load_media(p, 16, 24).shape == (1, 3, 5, 16, 24)
    assert M.load_media(p, 16, 24, max_frames=2).shape == (1, 3, 2, 16, 24)


def test_unreadable_files(tmp_path):
    with pytest.raises(M.MediaError, match="no such file"):
        M.load_media(tmp_path / "missing.png", 32, 32)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a picture")
    with pytest.raises(M.MediaError) as e:
        M.load_media(bad, 32, 32)
    assert str(bad) in str(e.value) and "cannot be read" in str(e.value)
    badv = tmp_path / "broken.mp4"
    badv.write_bytes(b"\x00" * 100)
    with pytest.raises(M.MediaError) as e:
        M.load_media(badv, 32, 32)
    assert str(badv) in str(e.value)
    with pytest.raises(M.MediaError, match="folder"):
        M.load_media(tmp_path, 32, 32)
    assert issubclass(M.MediaError, ValueError)
