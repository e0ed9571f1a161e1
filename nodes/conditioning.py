"""Conditioning nodes: an image or a clip placed at a frame of the video (chain one per keyframe), and an IC-LoRA
control video; the sampler prepares them with ltx_core, which knows the frame rules."""
from __future__ import annotations

from ..ltx_core import CONDITIONING_CRF, Keyframe
from .common import CATEGORY, CONDITIONING, MAX_SIZE, Conditioning, check_image, node_error


class AddImage:
    DESCRIPTION = ("Conditions the video on an image (a keyframe) or a clip (a batch of frames) placed at a frame "
                   "index: frame 0 for image-to-video, -1 for a last frame, a clip at 0 to extend a video. Chain "
                   "one node per keyframe. Images are centre-cropped to the video's aspect ratio, resized, blurred "
                   "and H.264-compressed like the official pipeline prepares them.")
    CATEGORY = f"{CATEGORY}/conditioning"
    SEARCH_ALIASES = ["image to video", "i2v", "img2vid", "keyframes", "keyframe", "first frame", "last frame",
                      "first last frame", "extend video", "video extension", "conditioning image"]
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
            "crf": ("INT", {"default": CONDITIONING_CRF, "min": 0, "max": 51, "step": 1,
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
        try:
            keyframe = Keyframe(frames, int(frame_index), float(strength), int(crf), bool(blur), name="image")
        except ValueError as e:
            raise node_error(node, e) from None
        return (conditioning.with_keyframe(keyframe),)


class AddControlVideo:
    DESCRIPTION = ("Adds a control video for an IC-LoRA (depth, pose or edge maps made by other nodes, or any video "
                   "for the detailer): the model sees it next to the video it generates, frame by frame, and "
                   "follows it. Load the matching IC-LoRA with LTX-Video LoRA Loader. The frames are centre-cropped "
                   "to the video's aspect ratio and resized, without blur or compression; frames past the video's "
                   "end are dropped.")
    CATEGORY = f"{CATEGORY}/conditioning"
    SEARCH_ALIASES = ["ic-lora", "ic lora", "control", "controlnet", "depth", "pose", "canny", "video to video",
                      "detailer"]
    FUNCTION = "add"
    RETURN_TYPES = (CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = ("The conditioning with this control video added.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": (CONDITIONING, {"tooltip": "From LTX-Video Text Encode, Add Image / Clip or another "
                                                       "Add Control Video."}),
            "control_video": ("IMAGE", {"tooltip": "The control frames (e.g. a depth or pose video); its first "
                                                   "8k+1 frames that fit in the video are used."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                   "tooltip": "1.0: the model sees the control exactly; lower values show it "
                                              "through noise (sigma * (1 - strength)), so it is followed more "
                                              "loosely."}),
            "start_frame": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 8,
                                    "tooltip": "Video frame where the control's first frame goes: 0, or a "
                                               "multiple of 8."}),
        }}

    def add(self, conditioning, control_video, strength, start_frame):
        node = "LTX-Video Add Control Video"
        if not isinstance(conditioning, Conditioning):
            raise ValueError(f"{node}: conditioning must come from LTX-Video Text Encode")
        frames = check_image(control_video, f"{node}: control_video").detach().float().cpu()
        if int(start_frame) < 0:  # a keyframe's negative index counts from the end; a control video starts
            raise ValueError(f"{node}: start_frame must be 0 or a multiple of 8 from there, got {start_frame}")
        try:
            control = Keyframe(frames, int(start_frame), float(strength), name="control video")
        except ValueError as e:
            raise node_error(node, e) from None
        return (conditioning.with_control(control),)


NODE_CLASS_MAPPINGS = {"LTXVStackAddImage": AddImage, "LTXVStackAddControlVideo": AddControlVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"LTXVStackAddImage": "LTX-Video Add Image / Clip (keyframes)",
                              "LTXVStackAddControlVideo": "LTX-Video Add Control Video (IC-LoRA)"}
