"""Soak test: 100 jobs queued on one real ComfyUI server (`main.py --cpu`) with this pack and tiny models, mostly
all at once, mixing
(a) valid runs of every API workflow in workflows/api/ (shrunk like the server test, varied seeds; two with a
    size off the latent grid, 100 px wide and 20 frames, which come out cropped to that size),
(b) invalid inputs, rejected by POST /prompt at validation (a model name not in the list, a value out of range or of
    the wrong type), and inputs that fail while running (a keyframe beyond the video's end or before its start, a
    bad tiling value, a bad long-video chunk size, ...),
(c) model names escaping their folder ("../../etc/passwd", "../checkpoints/<a real checkpoint>", an absolute path,
    decoy model files placed just outside the model folders),
(d) long sampler runs ended by POST /interrupt while sampling.

Then checks: the server still answers and its queue is empty; every valid job is in /history as a success with its
video, which PyAV decodes with the requested frame count and size; every invalid job failed with its own message
(validation: the 400 of POST /prompt names the node, the input and the bad value; execution: /history says error and
the exception message names the problem); every interrupted job ended as interrupted, without outputs; no file
changed in the work directory outside the output and temp folders, the ComfyUI checkout is unchanged, and the decoy
files outside the model folders were not read (their access time, where the file system keeps one); the server's
resident memory at the end is within MEMORY_MARGIN of its memory after the first 10 jobs.

Runs when COMFYUI_PATH is set, like tests/test_comfyui_server.py (see tests/README_integration.md); `-s` shows the
summary (jobs queued / succeeded / failed as expected / interrupted, memory).
"""
from __future__ import annotations

import os
import random
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import comfyui_support as cs
import pytest

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH not set: see tests/README_integration.md")

WORKFLOWS = cs.load_api_workflows()
T2V, I2V = "ltxv-2b-0.9.6-dev-text-to-video", "ltxv-2b-0.9.6-dev-image-to-video"
FLF, GGUF = "ltxv-2b-0.9.6-distilled-first-last-frame", "ltxv-13b-0.9.8-distilled-gguf"
LORA, MULTISCALE = "ltxv-13b-0.9.7-dev-distilled-lora-text-to-video", "ltxv-13b-0.9.8-distilled-multiscale"
LONG, EXTEND = "ltxv-13b-0.9.8-distilled-long-image-to-video", "ltxv-2b-0.9.6-dev-extend-video"
IC_LORA = "ltxv-13b-0.9.7-distilled-ic-lora-pose"

TOTAL_JOBS = 100
FIRST_JOBS = 10  # run (and waited for) first; the memory baseline is taken after them
SOAK_TIMEOUT = 600  # every job of the second batch; they take ~0.1-1 s each on 2 cores, the interrupted ones ~1 s
INTERRUPT_STEPS = 1000  # far more than the test waits for: only an interrupt ends these in time
INTERRUPT_AT_STEP = 2
# Memory margin: the end RSS may exceed the RSS after the first 10 jobs (every workflow ran once: every model file
# loaded, torch/PyAV/ComfyUI warmed up) by max(150 MiB, 25 %). The tiny models are a few MB each and a job's tensors
# (a 96x64x17 video, its latents) well under 10 MB, so allocator caches, glibc arenas, ComfyUI's node cache and
# its /history of 100 prompts stay well inside it, while a leak that holds on to models or per-job buffers over the
# 90 following jobs (or a loader that never releases what it loaded) grows past it.
MEMORY_MARGIN_BYTES, MEMORY_MARGIN_FRACTION = 150 * 2**20, 0.25
DECOYS = ("models/decoy-outside.safetensors", "models/decoy-outside.gguf", "decoy-outside.safetensors")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from cs.serve(tmp_path_factory, COMFYUI_PATH)


@dataclass
class Job:
    kind: str  # "valid" | "rejected" (at validation) | "error" (while running) | "escape" | "interrupt"
    name: str
    api: dict
    node: str | None = None  # the node the failure must be reported on
    expect: tuple = ()  # valid: nothing; rejected/escape: (input name, error type); error: message fragments
    prompt_id: str | None = None
    response: object = None  # POST /prompt's answer (the HTTPError for a rejected one)
    result: dict = field(default_factory=lambda: {"outcome": None, "error": None, "interrupt_sent": None})
    problems: list = field(default_factory=list)  # what the checks found wrong with this job


# ----------------------------------------------------------------------------------------------------------------
# the jobs


def _graph(name: str, seed: int, **shrink) -> dict:
    api = cs.shrink(WORKFLOWS[name], **shrink)
    if name == EXTEND:  # the input clip (10 frames -> its first 9 are used) plus 16 new frames, as in the server test
        (_, sampler), = cs.nodes_of(api, "LTXVStackSampler")
        sampler["inputs"]["num_frames"] = 25
    for _, node in cs.nodes_of(api, *cs.SAMPLERS, "LTXVStackVAEDecode"):
        node["inputs"]["seed"] = seed
    return api


def _node(api: dict, class_type: str, index: int = 0) -> tuple[str, dict]:
    return cs.nodes_of(api, class_type)[index]


def _valid(name: str, seed: int, **sampler_inputs) -> Job:
    api = _graph(name, seed)
    for _, sampler in cs.nodes_of(api, *cs.SAMPLERS):
        sampler["inputs"].update(sampler_inputs)
    return Job("valid", f"{name} seed {seed} {sampler_inputs or ''}", api)


def _set(kind: str, name: str, seed: int, class_type: str, inputs: dict, expect: tuple, index: int = 0) -> Job:
    api = _graph(name, seed)
    node_id, node = _node(api, class_type, index)
    node["inputs"].update(inputs)
    return Job(kind, f"{name}: {class_type} {inputs}", api, node_id, expect)


def _rejected_jobs(seed: int) -> list[Job]:
    """Inputs ComfyUI's validation refuses: (workflow, node, inputs, (input name, error type))."""
    cases = [
        (T2V, "LTXVStackCheckpointLoader", {"ckpt_name": "ltxv-2b-0.9.6-dev-MISSING.safetensors"}, "value_not_in_list"),
        (LORA, "LTXVStackLoraLoader", {"lora_name": "no-such-lora.safetensors"}, "value_not_in_list"),
        (GGUF, "LTXVStackModelLoader", {"model_name": "LTXV-13B-0.9.8-distilled-Q9_Z.gguf"}, "value_not_in_list"),
        (T2V, "LTXVStackSampler", {"preset": "ltxv-99b-nonexistent"}, "value_not_in_list"),
        (T2V, "LTXVStackVAEDecode", {"tiling": "sometimes"}, "value_not_in_list"),
        (T2V, "LTXVStackCheckpointLoader", {"weight_dtype": "int3"}, "value_not_in_list"),
        (T2V, "LTXVStackSampler", {"width": 8}, "value_smaller_than_min"),
        (T2V, "LTXVStackSampler", {"num_frames": 0}, "value_smaller_than_min"),
        (T2V, "LTXVStackSampler", {"steps": 5000}, "value_bigger_than_max"),
        (T2V, "LTXVStackSampler", {"denoise": 1.5}, "value_bigger_than_max"),
        (I2V, "LTXVStackAddImage", {"strength": 2.0}, "value_bigger_than_max"),
        (I2V, "LTXVStackAddImage", {"crf": 99}, "value_bigger_than_max"),
        (T2V, "LTXVStackSampler", {"seed": "not-a-number"}, "invalid_input_type"),
        (LONG, "LTXVStackLongSampler", {"tile_frames": 5}, "value_smaller_than_min"),
    ]
    return [_set("rejected", name, seed + i, cls, inputs, (next(iter(inputs)), err))
            for i, (name, cls, inputs, err) in enumerate(cases)]


def _error_jobs(seed: int) -> list[Job]:
    """Inputs that pass validation and fail while running: (workflow, node, inputs, fragments of the message, which
    the node that fails reports; index: which node of that class)."""
    beyond = ("beyond the video's last frame", "frame_index")
    cases = [
        (I2V, "LTXVStackAddImage", {"frame_index": 40}, "LTXVStackSampler", beyond, 0),
        (I2V, "LTXVStackAddImage", {"frame_index": 17}, "LTXVStackSampler", beyond, 0),
        (FLF, "LTXVStackAddImage", {"frame_index": 200}, "LTXVStackSampler", beyond, 0),
        (GGUF, "LTXVStackAddImage", {"frame_index": 30}, "LTXVStackSampler", beyond, 0),
        (T2V, "LTXVStackVAEDecode", {"tiling": "on", "spatial_tile": 128, "spatial_overlap": 128},
         "LTXVStackVAEDecode", ("spatial_overlap=128 must be smaller than spatial_tile=128",), 0),
        (I2V, "LTXVStackVAEDecode", {"tiling": "auto", "temporal_tile": 16, "temporal_overlap": 24},
         "LTXVStackVAEDecode", ("temporal_overlap=24 must be smaller than temporal_tile=16",), 0),
        (MULTISCALE, "LTXVStackVAEDecode", {"tiling": "on", "spatial_tile": 100},
         "LTXVStackVAEDecode", ("spatial_tile=100 is invalid", "multiple of 32"), 0),
        (GGUF, "LTXVStackVAEDecode", {"tiling": "on", "temporal_overlap": 12},
         "LTXVStackVAEDecode", ("temporal_overlap=12 is invalid", "multiple of 8"), 0),
        (I2V, "LTXVStackAddImage", {"frame_index": -40}, "LTXVStackSampler",
         ("before the video's first frame", "frame_index -40"), 0),
        (IC_LORA, "LTXVStackAddControlVideo", {"start_frame": 64}, "LTXVStackSampler",
         ("control video", "beyond the video's last frame"), 0),
        (LONG, "LTXVStackLongSampler", {"tile_frames": 30}, "LTXVStackLongSampler",
         ("tile_frames must be 8k+1", "got 30"), 0),
        (LONG, "LTXVStackLongSampler", {"long_memory_strength": 0.5, "long_memory_frame": 40}, "LTXVStackLongSampler",
         ("long_memory_frame", "got 40"), 0),
        (T2V, "LTXVStackSampler", {"denoise": 0.5}, "LTXVStackSampler", ("denoise below 1.0",), 0),
        (T2V, "LTXVStackTextEncode", {"prompt": "a fox | a hare"}, "LTXVStackSampler", ("separated by '|'",), 0),
        (LONG, "LTXVStackLongSampler", {"overlap_frames": 32}, "LTXVStackLongSampler", ("overlap_frames",), 0),
    ]
    jobs = []
    for i, (name, cls, inputs, failing, fragments, index) in enumerate(cases):
        job = _set("error", name, seed + i, cls, inputs, fragments, index)
        job.node = _node(job.api, failing)[0]
        jobs.append(job)
    return jobs


def _escape_jobs(seed: int) -> list[Job]:
    """Model names that leave their folder, some of them naming real files (a real checkpoint through '..', the
    decoys): all must be refused at validation, naming the input."""
    ckpt_2b, ckpt_13b = "ltxv-2b-0.9.6-dev-04-25.safetensors", "ltxv-13b-0.9.8-distilled.safetensors"
    cases = [
        (T2V, "LTXVStackCheckpointLoader", "ckpt_name", "../../etc/passwd"),
        (T2V, "LTXVStackCheckpointLoader", "ckpt_name", "/etc/passwd"),
        (T2V, "LTXVStackCheckpointLoader", "ckpt_name", "../decoy-outside.safetensors"),
        (T2V, "LTXVStackCheckpointLoader", "ckpt_name", "../../decoy-outside.safetensors"),
        (T2V, "LTXVStackCheckpointLoader", "ckpt_name", f"../checkpoints/{ckpt_2b}"),
        (T2V, "LTXVStackCheckpointLoader", "ckpt_name", f"sub/../../checkpoints/{ckpt_2b}"),
        (LORA, "LTXVStackLoraLoader", "lora_name", "../checkpoints/ltxv-13b-0.9.7-dev.safetensors"),
        (LORA, "LTXVStackLoraLoader", "lora_name", "../../../../../../../../etc/passwd"),
        (T2V, "LTXVStackTextEncoderLoader", "text_encoder_name", f"../checkpoints/{ckpt_2b}"),
        (MULTISCALE, "LTXVStackUpsamplerLoader", "upscale_model_name", "../decoy-outside.safetensors"),
        (GGUF, "LTXVStackModelLoader", "model_name", "../decoy-outside.gguf"),
        (GGUF, "LTXVStackVAELoader", "vae_name", f"../checkpoints/{ckpt_13b}"),
    ]
    return [_set("escape", name, seed + i, cls, {inp: value}, (inp, "value_not_in_list"))
            for i, (name, cls, inp, value) in enumerate(cases)]


def _interrupt_job(seed: int) -> Job:
    api = _graph(T2V, seed, width=192, height=128, num_frames=33, steps=INTERRUPT_STEPS)
    return Job("interrupt", f"{T2V} {INTERRUPT_STEPS} steps seed {seed}", api, _node(api, "LTXVStackSampler")[0])


def _all_jobs() -> tuple[list[Job], list[Job]]:
    """(the first 10: every workflow once, and one more; the other 90, shuffled with a fixed seed)."""
    names = sorted(WORKFLOWS)
    first = [_valid(name, 100 + i) for i, name in enumerate(names)]
    first += [_valid(T2V, 100 + len(first) + i) for i in range(FIRST_JOBS - len(first))]
    rest = _rejected_jobs(300) + _error_jobs(400) + _escape_jobs(500) + [_interrupt_job(600 + i) for i in range(3)]
    # sizes off the latent grid: generated at the next valid size, then cropped to the one asked for
    rest += [_valid(name, 700 + i, width=100, num_frames=20) for i, name in enumerate((T2V, MULTISCALE))]
    rest += [_valid(names[i % len(names)], 1000 + i) for i in range(TOTAL_JOBS - FIRST_JOBS - len(rest))]
    random.Random(16).shuffle(rest)
    return first, rest


# ----------------------------------------------------------------------------------------------------------------
# queueing and following


def _queue_all(server, jobs: list[Job], client_id: str) -> None:
    for job in jobs:
        try:
            job.response = server.post_json("/prompt", {"prompt": job.api, "client_id": client_id})
            job.prompt_id = job.response.get("prompt_id")
        except cs.HTTPError as e:
            job.response = e


def _interrupt_if_sampling(server, job: Job, data: dict) -> None:
    if (job.kind == "interrupt" and job.result["interrupt_sent"] is None and data.get("node") == job.node
            and data.get("value", 0) >= INTERRUPT_AT_STEP):
        server.post_json("/interrupt", {"prompt_id": job.prompt_id})  # only this prompt, if it is the running one
        job.result["interrupt_sent"] = dict(data)


def _follow(server, ws, jobs: list[Job], timeout: float) -> None:
    """Read the WebSocket until every queued job is done (`executing` with node None); record each one's outcome
    and interrupt the interrupt jobs once their sampler has made INTERRUPT_AT_STEP steps."""
    by_id = {j.prompt_id: j for j in jobs if j.prompt_id}
    pending = set(by_id)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline or not server.alive():
            state = "ComfyUI exited" if not server.alive() else f"timed out after {timeout:.0f} s"
            raise TimeoutError(f"{state}; {len(pending)} jobs never finished: "
                               f"{[by_id[p].name for p in pending][:10]}\n{server.log_tail()}")
        try:
            msg = ws.recv(5.0)
        except TimeoutError:
            continue
        if not isinstance(msg, dict):
            continue  # binary preview frames
        data = msg.get("data") or {}
        job = by_id.get(data.get("prompt_id"))
        if job is None:
            continue
        kind = msg.get("type")
        if kind == "progress":
            _interrupt_if_sampling(server, job, data)
        elif kind == "execution_success":
            job.result["outcome"] = "success"
        elif kind == "execution_error":
            job.result["outcome"], job.result["error"] = "error", data
        elif kind == "execution_interrupted":
            job.result["outcome"], job.result["error"] = "interrupted", data
        elif kind == "executing" and data.get("node") is None:
            pending.discard(job.prompt_id)


# ----------------------------------------------------------------------------------------------------------------
# checks: each returns a list of problems ("" if none)


def _check_valid(server, job: Job, history: dict) -> list[str]:
    if job.result["outcome"] != "success" or history["status"]["status_str"] != "success":
        error = job.result["error"] or {}
        return [f"{job.name}: outcome {job.result['outcome']}, history {history['status']['status_str']}: "
                f"{error.get('node_type')}: {error.get('exception_message')}"]
    (save_id, _), = cs.nodes_of(job.api, "SaveVideo")
    items = (history["outputs"].get(save_id) or {}).get("images") or []
    if len(items) != 1:
        return [f"{job.name}: SaveVideo output in /history: {history['outputs']}"]
    path = (server.output_dir / items[0].get("subfolder", "") / items[0]["filename"]).resolve()
    if items[0]["type"] != "output" or not path.is_relative_to(server.output_dir.resolve()) or not path.is_file():
        return [f"{job.name}: saved video {items[0]} is not a file in the output folder"]
    got, want = cs.probe_video(path), cs.expected_video(job.api)
    if (got["frames"], got["width"], got["height"]) != (want["frames"], want["width"], want["height"]):
        return [f"{job.name}: {path.name} has {got}, want {want}"]
    job.result["video"] = path
    return []


def _check_rejected(job: Job) -> list[str]:
    """A 400 from POST /prompt whose node_errors name the node, its class, the input and (for a list) the value."""
    input_name, error_type = job.expect
    e = job.response
    if not isinstance(e, cs.HTTPError):
        return [f"{job.name}: accepted by POST /prompt ({e}), expected a validation error on {input_name}"]
    body = e.body if isinstance(e.body, dict) else {}
    node_error = (body.get("node_errors") or {}).get(job.node) or {}
    errors = node_error.get("errors") or []
    value = job.api[job.node]["inputs"][input_name]
    ok = (e.status == 400 and (body.get("error") or {}).get("type") == "prompt_outputs_failed_validation"
          and node_error.get("class_type") == job.api[job.node]["class_type"]
          and any(x["type"] == error_type and (x.get("extra_info") or {}).get("input_name") == input_name
                  and input_name in x["details"] and (error_type != "value_not_in_list" or str(value) in x["details"])
                  for x in errors))
    return [] if ok else [f"{job.name}: expected {error_type} on node {job.node} input {input_name}, got "
                          f"HTTP {e.status}: {body or e.body}"]


def _check_failed(job: Job, history: dict) -> list[str]:
    """Failed while running: execution_error from the expected node, the message naming the problem, in /history."""
    error = job.result["error"] or {}
    message = error.get("exception_message") or ""
    hist_errors = [m[1] for m in history["status"]["messages"] if m[0] == "execution_error"]
    ok = (job.result["outcome"] == "error" and error.get("node_id") == job.node
          and all(f in message for f in job.expect) and history["status"]["status_str"] == "error"
          and not history["outputs"] and [h.get("exception_message") for h in hist_errors] == [message])
    return [] if ok else [f"{job.name}: expected an error from node {job.node} saying {job.expect}; got outcome "
                          f"{job.result['outcome']} from {error.get('node_type')} ({error.get('node_id')}): "
                          f"{message!r}; history {history['status']['status_str']}, outputs {history['outputs']}"]


def _check_interrupted(job: Job, history: dict) -> list[str]:
    sent, error = job.result["interrupt_sent"], job.result["error"] or {}
    ok = (sent is not None and sent["value"] < sent["max"] and job.result["outcome"] == "interrupted"
          and error.get("node_id") == job.node and history["status"]["status_str"] == "error"
          and "execution_interrupted" in [m[0] for m in history["status"]["messages"]] and not history["outputs"])
    return [] if ok else [f"{job.name}: interrupt sent at {sent}; outcome {job.result['outcome']} {error}; "
                          f"history {history['status']['status_str']}"]


def _check_job(server, job: Job) -> list[str]:
    if job.kind in ("rejected", "escape"):
        return _check_rejected(job)
    if job.prompt_id is None or job.response.get("node_errors"):
        return [f"{job.name}: POST /prompt refused it (or part of it): {job.response}"]
    history = server.history(job.prompt_id)
    if job.kind == "valid":
        return _check_valid(server, job, history)
    if job.kind == "error":
        return _check_failed(job, history)
    return _check_interrupted(job, history)


# ----------------------------------------------------------------------------------------------------------------
# file system


def _tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """relative path -> ("file", size, mtime_ns) / ("link", target) / ("dir",) of everything under root (links not
    followed), except the `skip` paths (and what is under them)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if (rel_dir / d).as_posix() not in skip]
        for name in dirnames + filenames:
            rel, p = (rel_dir / name).as_posix(), Path(dirpath) / name
            if rel in skip:
                continue
            st = p.lstat()
            out[rel] = (("link", os.readlink(p)) if p.is_symlink() else ("dir",) if p.is_dir()
                        else ("file", st.st_size, st.st_mtime_ns))
    return out


def _diff(before: dict, after: dict) -> list[str]:
    """Paths added, removed or changed (size or modification time), each marked +, - or ~."""
    return [("+" if k not in before else "-" if k not in after else "~") + k
            for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def _place_decoys(server) -> bool:
    """Real model files just outside the model folders (a copy of a tiny checkpoint / GGUF), their access time set
    before their modification time so that a read updates it (relatime). Returns whether the file system records
    reads that way (checked on a probe file); if not, only the refusals show that nothing was read."""
    models = server.work / "models"
    checkpoint = models / "checkpoints" / "ltxv-2b-0.9.6-dev-04-25.safetensors"
    gguf = models / "diffusion_models" / next(iter(cs.GGUF_FILES))
    probe = server.work / "atime-probe.safetensors"
    for rel in (*DECOYS, probe.name):
        path = server.work / rel
        shutil.copyfile(gguf if path.suffix == ".gguf" else checkpoint, path)
        st = path.stat()
        os.utime(path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
    before = probe.stat().st_atime_ns
    probe.read_bytes()
    records = probe.stat().st_atime_ns != before
    probe.unlink()
    return records


def _decoys_read(server) -> list[str]:
    read = []
    for rel in DECOYS:
        st = (server.work / rel).stat()
        if st.st_atime_ns >= st.st_mtime_ns:
            read.append(rel)
    return read


# ----------------------------------------------------------------------------------------------------------------
# the test


def test_soak_100_jobs(server):
    t0 = time.monotonic()
    atime_works = _place_decoys(server)
    # only output/ and temp/ may change under the work directory; comfyui.log is the server's stdout, kept by the test
    skip = ("output", "temp", "comfyui.log")
    work_before, comfy_before = _tree(server.work, skip), _tree(server.comfy_path, (".git",))
    first, rest = _all_jobs()
    jobs = first + rest
    assert len(jobs) == TOTAL_JOBS

    client_id = uuid.uuid4().hex
    ws = server.websocket(client_id)
    try:
        _queue_all(server, first, client_id)
        _follow(server, ws, first, SOAK_TIMEOUT)
        rss_first = server.rss_bytes()
        _queue_all(server, rest, client_id)  # all at once: the queue holds the executable ones
        _follow(server, ws, rest, SOAK_TIMEOUT)
    finally:
        ws.close()
    rss_end = server.rss_bytes()
    elapsed = time.monotonic() - t0

    for job in jobs:
        job.problems = _check_job(server, job)
    problems = [p for job in jobs for p in job.problems]
    stats = server.get_json("/system_stats")  # still answering
    queue = server.get_json("/queue")
    if queue["queue_running"] or queue["queue_pending"]:
        problems.append(f"queue not empty at the end: {queue}")
    if not server.alive() or "system" not in stats:
        problems.append(f"server not answering: {stats}")
    videos = [j.result.get("video") for j in jobs if j.kind == "valid"]
    if len(set(videos)) != len(videos):
        problems.append("two valid jobs reported the same video file")

    changed = _diff(work_before, _tree(server.work, skip))
    if changed:
        problems.append(f"files changed outside the output and temp folders: {changed[:20]}")
    changed = _diff(comfy_before, _tree(server.comfy_path, (".git",)))
    if changed:
        problems.append(f"files changed in the ComfyUI checkout: {changed[:20]}")
    if atime_works and _decoys_read(server):
        problems.append(f"decoy files outside the model folders were read: {_decoys_read(server)}")

    limit = rss_first + max(MEMORY_MARGIN_BYTES, MEMORY_MARGIN_FRACTION * rss_first)
    if rss_end > limit:
        problems.append(f"server memory grew: {rss_end / 2**20:.0f} MiB at the end > {limit / 2**20:.0f} MiB allowed")

    summary = _summary(jobs, problems, rss_first, rss_end, limit, elapsed, atime_works)
    print("\n" + summary)
    assert not problems, summary + "\nproblems:\n" + "\n".join(problems) + f"\nserver log:\n{server.log_tail(40)}"


def _summary(jobs, problems, rss_first, rss_end, limit, elapsed, atime_works) -> str:
    count = {k: sum(j.kind == k for j in jobs) for k in ("valid", "rejected", "error", "escape", "interrupt")}
    ok = {k: sum(j.kind == k and not j.problems for j in jobs) for k in count}
    return (f"soak: {len(jobs)} jobs queued in {elapsed:.0f} s; valid {ok['valid']}/{count['valid']} succeeded with "
            f"their video; failed as expected: rejected at validation {ok['rejected']}/{count['rejected']}, "
            f"path escapes refused {ok['escape']}/{count['escape']}, failed while running {ok['error']}/"
            f"{count['error']}; interrupted {ok['interrupt']}/{count['interrupt']}\n"
            f"soak: server RSS after {FIRST_JOBS} jobs {rss_first / 2**20:.0f} MiB, at the end {rss_end / 2**20:.0f}"
            f" MiB (limit {limit / 2**20:.0f} MiB: + max(150 MiB, 25 %)); decoy reads "
            f"{'checked by access time' if atime_works else 'not observable (no atime): refusals only'}; "
            f"{len(problems)} problems")
