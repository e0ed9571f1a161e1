"""Reading back the videos the code under test writes."""
import av
import numpy as np


def read_video_frames(path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video -> (frames (F,H,W,3) uint8, fps)."""
    with av.open(str(path)) as inp:
        streams = [s for s in inp.streams if s.type == "video"]
        if not streams:
            raise ValueError(f"{path}: has no video stream")
        stream = streams[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        frames = []
        for frame in inp.decode(stream):
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        raise ValueError(f"{path}: has no frames")
    return np.stack(frames), float(rate) if rate else 0.0
