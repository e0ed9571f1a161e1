"""Conditioning node: an image or a clip placed at a frame of the video (chain one per keyframe), and how the
sampler turns those into ltx_core ConditioningItems."""
from __future__ import annotations

from ..ltx_core.conditioning.media import (
    pad_media,
    prepare_frames,
    trim_to_valid_frames,
)
from ..ltx_core.pipelines import ConditioningItem, padded_size
from .common import (
    CATEGORY,
    CONDITIONING,
    MAX_SIZE,
    TEMPORAL_SCALE,
    Conditioning,
    Keyframe,
    check_image,
)

DEFAULT_CRF = 29  # the official pipeline's


class AddImage:
    DESCRIPTION = ("Conditions the video on an image (a keyframe) or a clip (a batch of frames) placed at a frame "
                   "index: frame 0 for image-to-video, -1 for a last frame, a clip at 0 to extend a video. Chain "
                   "one node per keyframe. Images are centre-cropped to the video's aspect ratio, resized, blurred "
                   "and H.264-compressed like the official pipeline prepares them.")
    CATEGORY = f"{CATEGORY}/conditioning"
    FUNCTION = "add"
    RETURN_TYPES = (CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = ("The conditioning with this image/clip added.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": (CONDITIONING, {"tooltip": "From LTX-Video Text Encode or another Add Image / Clip."}),
            "image": ("IMAGE", {"tooltip": "One image (a keyframe) or several frames (a clip; its first 8k+1 "
                                           "frames are used), e.g. from Load Image or Get Video Components."}),
            "frame_index": ("INT", {"default": 0, "min": -MAX_SIZE, "max": MAX_SIZE, "step": 1,
                                    "tooltip": "Video frame where the image (or the clip's first frame) goes. "
                                               "Negative counts from the end: -1 puts the image, or the clip's "
                                               "last frame, on the video's last frame. A clip that does not "
                                               "start at frame 0 must start at a multiple of 8."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                   "tooltip": "1.0 keeps the frame(s) as given; lower values let the model "
                                              "change them more."}),
            "crf": ("INT", {"default": DEFAULT_CRF, "min": 0, "max": 51, "step": 1,
                            "tooltip": "H.264 compression applied to each frame before encoding (the model was "
                                       "trained on compressed video; a still image with no compression artefacts "
                                       "tends to freeze the motion). 0 = none; the official pipeline uses 29."}),
            "blur": ("BOOLEAN", {"default": True,
                                 "tooltip": "Light 3x3 Gaussian blur before compression, as the official "
                                            "pipeline does."}),
        }}

    def add(self, conditioning, image, frame_index, strength, crf, blur):
        node = "LTX-Video Add Image / Clip"
        if not isinstance(conditioning, Conditioning):
            raise ValueError(f"{node}: conditioning must come from LTX-Video Text Encode")
        frames = check_image(image, f"{node}: image").detach().float().cpu()
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"{node}: strength must be between 0 and 1, got {strength}")
        if not 0 <= crf <= 51:
            raise ValueError(f"{node}: crf must be between 0 and 51, got {crf}")
        n = trim_to_valid_frames(frames.shape[0])
        frames = frames[:n].contiguous()
        if frame_index > 0 and n > 1 and frame_index % TEMPORAL_SCALE:
            lo = frame_index // TEMPORAL_SCALE * TEMPORAL_SCALE
            raise ValueError(f"{node}: a clip ({n} frames) that does not start at frame 0 must start at a multiple "
                             f"of 8; use frame_index {lo} or {lo + TEMPORAL_SCALE}")
        kf = Keyframe(frames, int(frame_index), float(strength), int(crf), bool(blur))
        return (conditioning.with_keyframe(kf),)


def keyframe_start(kf: Keyframe, num_frames: int) -> int:
    n = kf.frames.shape[0]
    return kf.frame_index if kf.frame_index >= 0 else num_frames + kf.frame_index - (n - 1)


def conditioning_items(keyframes, height: int, width: int, num_frames: int, node: str) -> list[ConditioningItem]:
    """Keyframes -> ltx_core ConditioningItems for a video of height x width x num_frames (the requested size):
    media prepared like the official inference script (cropped to the aspect ratio at the source resolution, blurred,
    H.264 round trip, padded like the output); the pipeline resizes it to each pass's size. Errors say which
    keyframe and what to change."""
    _, _, padded_frames = padded_size(height, width, num_frames)
    items = []
    for k, kf in enumerate(keyframes, 1):
        n = kf.frames.shape[0]
        what = f"{node}: keyframe {k} ({'1 frame' if n == 1 else f'a clip of {n} frames'}, frame_index " \
               f"{kf.frame_index})"
        start = keyframe_start(kf, num_frames)
        if start < 0:
            raise ValueError(f"{what} would start before the video's first frame; the video has {num_frames} "
                             f"frames: raise num_frames to at least {n} or use frame_index 0")
        if start >= num_frames:
            raise ValueError(f"{what} is beyond the video's last frame ({num_frames - 1}); use a frame_index up to "
                             f"{num_frames - 1}, or -1 for the last frame, or raise num_frames")
        if start + n > padded_frames:
            raise ValueError(f"{what} runs past the end of the {num_frames}-frame video; raise num_frames to at "
                             f"least {start + n} or use a shorter clip")
        if start > 0 and n > 1 and start % TEMPORAL_SCALE:
            lo = start // TEMPORAL_SCALE * TEMPORAL_SCALE
            raise ValueError(f"{what} starts at frame {start}; a clip that does not start at frame 0 must start at "
                             f"a multiple of 8 (e.g. {lo} or {lo + TEMPORAL_SCALE}): change frame_index or "
                             "num_frames")
        media = prepare_frames(kf.frames, height, width, just_crop=True, blur=kf.blur, crf=kf.crf)
        items.append(ConditioningItem(pad_media(media, height, width), start, kf.strength))
    return items


NODE_CLASS_MAPPINGS = {"LTXVStackAddImage": AddImage}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackAddImage": "LTX-Video Add Image / Clip"}
