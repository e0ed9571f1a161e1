"""Integration test: a real ComfyUI server (`main.py --cpu`) with this node pack, tiny models under the official
file names, and every API workflow in workflows/api/ queued over HTTP and followed over the WebSocket.

Runs when COMFYUI_PATH points to a ComfyUI checkout (0.3.64 or newer); the server runs with COMFYUI_PYTHON (a venv
with ComfyUI's requirements and this pack's), else with this interpreter. See tests/README_integration.md.

Checks:
- /object_info lists every node id of the pack (with display names), and the loaders offer the official file names
  served through --extra-model-paths-config (GGUF and VAE files included); the pack runs against ComfyUI itself,
  not its stand-ins;
- each API workflow (shrunk to 96x64, 17 frames, few steps; a long-video sampler to 57 frames in 3 chunks; same
  graph) succeeds: `execution_success`, then `executing` with node None; /history says success and names the saved
  video, which /view serves and PyAV decodes with the requested frame count, size and frame rate; a long-video
  sampler's progress bar counts the steps of every chunk;
- a prompt naming a missing model file is rejected with a node error naming the input and the file; a prompt that
  fails while running (a keyframe beyond the video's end) ends with `execution_error` from the sampler saying why;
  the server goes on serving (a following job succeeds);
- POST /interrupt while a sampler run of many steps is in progress ends it as interrupted, and the next job succeeds.
"""
import os
import uuid

import comfyui_support as cs
import pytest
from node_pack import import_pack, submodule

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH not set: see tests/README_integration.md")

WORKFLOWS = cs.load_api_workflows()
RUN_TIMEOUT = 240  # one tiny workflow
INTERRUPT_STEPS = 1000  # far more than the test waits for: only an interrupt ends it in time


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from cs.serve(tmp_path_factory, COMFYUI_PATH)


def _explain(srv, result, history=None):
    error = result.get("error") or {}
    return (f"outcome {result['outcome']}; error {error.get('node_type')}: {error.get('exception_message')}\n"
            f"{''.join(error.get('traceback') or [])}\nhistory status {history and history.get('status')}\n"
            f"server log:\n{srv.log_tail(40)}")


def _saved_videos(history, api):
    (save_id, _), = cs.nodes_of(api, "SaveVideo")
    out = history["outputs"].get(save_id)
    assert out, f"SaveVideo ({save_id}) has no output in /history: {history['outputs']}"
    assert out.get("animated") == [True]
    return out["images"]


def _check_success(srv, api, result, history):
    assert result["outcome"] == "success", _explain(srv, result, history)
    types = [m["type"] for m in result["messages"]]
    assert "execution_start" in types and "execution_success" in types
    assert history["status"]["status_str"] == "success" and history["status"]["completed"], history["status"]


def test_object_info_lists_every_node(server):
    pack = import_pack()
    info = server.get_json("/object_info")
    missing = sorted(set(pack.NODE_CLASS_MAPPINGS) - set(info))
    assert not missing, f"nodes missing from /object_info: {missing}\n{server.log_tail()}"
    for node_id, display in pack.NODE_DISPLAY_NAME_MAPPINGS.items():
        assert info[node_id]["display_name"] == display
        assert info[node_id]["python_module"].endswith(cs.PACK_DIR_NAME), info[node_id]["python_module"]
    req = {k: info[k]["input"]["required"] for k in
           ("LTXVStackCheckpointLoader", "LTXVStackTextEncoderLoader", "LTXVStackUpsamplerLoader",
            "LTXVStackLoraLoader", "LTXVStackModelLoader", "LTXVStackVAELoader")}
    assert set(cs.LORAS) <= set(req["LTXVStackLoraLoader"]["lora_name"][0])
    assert set(cs.CHECKPOINTS) <= set(req["LTXVStackCheckpointLoader"]["ckpt_name"][0])
    assert cs.T5_FILE in req["LTXVStackTextEncoderLoader"]["text_encoder_name"][0]
    assert cs.UPSAMPLER_FILE in req["LTXVStackUpsamplerLoader"]["upscale_model_name"][0]
    # .gguf files from diffusion_models (ComfyUI's own list would leave them out) and VAE files from vae
    assert set(cs.GGUF_FILES) <= set(req["LTXVStackModelLoader"]["model_name"][0])
    assert set(cs.VAE_FILES) <= set(req["LTXVStackVAELoader"]["vae_name"][0])
    log = server.log_text()
    failed = [line for line in log.splitlines() if cs.PACK_DIR_NAME in line and
              ("IMPORT FAILED" in line or "Cannot import" in line)]
    assert not failed, f"{failed}\n{server.log_tail()}"
    assert "using stand-ins" not in log, "the pack did not find ComfyUI's modules:\n" + server.log_tail()


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_api_workflow_makes_a_video(server, name, tmp_path):
    api = cs.shrink(WORKFLOWS[name])
    if name.endswith("extend-video"):
        # the input clip (10 frames -> its first 9 are used) plus 16 new frames
        (_, sampler), = cs.nodes_of(api, "LTXVStackSampler")
        sampler["inputs"]["num_frames"] = 25
    want = cs.expected_video(api)
    (_, create), = cs.nodes_of(api, "CreateVideo")
    fps = create["inputs"]["fps"]
    want_fps = cs.INPUT_CLIP_FPS if isinstance(fps, list) else fps

    result, history = server.run(api, RUN_TIMEOUT)
    _check_success(server, api, result, history)
    items = _saved_videos(history, api)
    assert len(items) == 1
    item = items[0]
    assert item["type"] == "output" and item["filename"].endswith(".mp4")
    assert (server.output_dir / item.get("subfolder", "") / item["filename"]).is_file()
    video = tmp_path / item["filename"]
    video.write_bytes(server.view(item))
    got = cs.probe_video(video)
    assert (got["frames"], got["width"], got["height"]) == (want["frames"], want["width"], want["height"]), \
        f"{name}: got {got}, want {want}"
    assert abs(got["fps"] - want_fps) < 1e-2, f"{name}: got {got['fps']} fps, want {want_fps}"
    for sampler_id, sampler in cs.nodes_of(api, "LTXVStackLongSampler"):
        _check_chunked_progress(name, sampler_id, sampler, result)


def _check_chunked_progress(name, sampler_id, sampler, result):
    """The long sampler went chunk by chunk, and each pass of each chunk had a bar of its own that ran to its end (a
    distilled recipe has a fixed number of steps per pass, its timestep lists). The order is the pipeline's (every
    chunk's first pass comes before the upsampled video's second passes), so the bars are compared as a multiset."""
    preset = submodule("ltx_core.presets.official").OFFICIAL_CONFIGS[sampler["inputs"]["preset"]]
    passes = [preset[k] for k in ("first_pass", "second_pass") if k in preset] or [preset]
    assert all(p.get("timesteps") for p in passes), f"{name}: the check needs a recipe with explicit timesteps"
    expected = [(len(p["timesteps"]),) * 2 for _ in range(cs.LONG_VIDEO_CHUNKS) for p in passes]
    progress = [m["data"] for m in result["messages"] if m["type"] == "progress"
                and (m.get("data") or {}).get("node") == sampler_id]
    assert progress, f"{name}: the long sampler reported no progress"
    finished = [(p["value"], p["max"]) for p in progress if p["value"] == p["max"]]
    assert sorted(finished) == sorted(expected), f"{name}: bars that ran to their end {finished}, expected {expected}"


def _small_t2v(seed):
    api = cs.shrink(WORKFLOWS["ltxv-2b-0.9.6-dev-text-to-video"], steps=2)
    (_, sampler), = cs.nodes_of(api, "LTXVStackSampler")
    sampler["inputs"]["seed"] = seed
    return api


def _assert_serving(server, seed):
    api = _small_t2v(seed)
    result, history = server.run(api, RUN_TIMEOUT)
    _check_success(server, api, result, history)
    assert len(_saved_videos(history, api)) == 1


def test_bad_prompts_report_the_problem_and_the_server_goes_on(server):
    # 1. a model file that is not in the checkpoints folder: rejected at queue time, naming input and file
    api = _small_t2v(11)
    (ckpt_id, ckpt), = cs.nodes_of(api, "LTXVStackCheckpointLoader")
    ckpt["inputs"]["ckpt_name"] = "ltxv-2b-0.9.6-dev-MISSING.safetensors"
    with pytest.raises(cs.HTTPError) as rejected:
        server.queue(api, uuid.uuid4().hex)
    body = rejected.value.body
    assert rejected.value.status == 400 and isinstance(body, dict), body
    assert body["error"]["type"] == "prompt_outputs_failed_validation", body
    errors = body["node_errors"][ckpt_id]["errors"]
    text = " ".join(f"{e['message']} {e['details']}" for e in errors)
    assert "ckpt_name" in text and "ltxv-2b-0.9.6-dev-MISSING.safetensors" in text, errors
    assert body["node_errors"][ckpt_id]["class_type"] == "LTXVStackCheckpointLoader"

    # 2. a keyframe beyond the video's last frame: accepted, fails in the sampler with the reason
    api = cs.shrink(WORKFLOWS["ltxv-2b-0.9.6-dev-image-to-video"], steps=2)
    (_, add), = cs.nodes_of(api, "LTXVStackAddImage")
    add["inputs"]["frame_index"] = 40
    (sampler_id, _), = cs.nodes_of(api, "LTXVStackSampler")
    result, history = server.run(api, RUN_TIMEOUT)
    assert result["outcome"] == "error", _explain(server, result, history)
    error = result["error"]
    assert error["node_id"] == sampler_id and error["node_type"] == "LTXVStackSampler", error
    assert "beyond the video's last frame" in error["exception_message"], error["exception_message"]
    assert "frame_index" in error["exception_message"]
    assert history["status"]["status_str"] == "error"
    assert not history["outputs"]

    # 3. still serving
    _assert_serving(server, 12)


def test_interrupt_a_running_job(server):
    api = cs.shrink(WORKFLOWS["ltxv-2b-0.9.6-dev-text-to-video"], width=192, height=128, num_frames=33,
                    steps=INTERRUPT_STEPS)
    (sampler_id, sampler), = cs.nodes_of(api, "LTXVStackSampler")
    sampler["inputs"]["seed"] = 21
    client_id = uuid.uuid4().hex
    ws = server.websocket(client_id)
    sent = []

    def interrupt_once_sampling(msg):
        data = msg.get("data") or {}
        if not sent and msg["type"] == "progress" and data.get("node") == sampler_id and data.get("value", 0) >= 2:
            server.post_json("/interrupt", {})
            sent.append(data)

    try:
        prompt_id = server.queue(api, client_id)
        result = server.wait(ws, prompt_id, RUN_TIMEOUT, on_message=interrupt_once_sampling)
    finally:
        ws.close()
    assert sent, "the sampler never reported progress:\n" + server.log_tail()
    assert sent[0]["value"] < sent[0]["max"], sent[0]  # it was interrupted mid-run
    assert result["outcome"] == "interrupted", _explain(server, result)
    interrupted = next(m["data"] for m in result["messages"] if m["type"] == "execution_interrupted")
    assert interrupted["node_id"] == sampler_id and interrupted["node_type"] == "LTXVStackSampler", interrupted
    history = server.history(prompt_id)
    assert history["status"]["status_str"] == "error" and not history["status"]["completed"]
    assert "execution_interrupted" in [m[0] for m in history["status"]["messages"]]
    assert not history["outputs"]
    queue = server.get_json("/queue")
    assert not queue["queue_running"] and not queue["queue_pending"], queue

    _assert_serving(server, 22)
