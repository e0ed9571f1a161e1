"""The shareable workflows: `workflows/<name>.json` (UI format, drag-and-drop) and `workflows/api/<name>.json`
(API format, queue-able with POST /prompt).

For every workflow:
- node types exist (ours from NODE_CLASS_MAPPINGS, core ones from the signatures written down below from
  ComfyUI 0.3.64); node inputs/outputs and links match INPUT_TYPES / RETURN_TYPES;
- widget values follow INPUT_TYPES order and are valid (ranges, combo options; model files by their official
  release names, GGUF quantizations and their VAE files by the names their Hugging Face repos publish; the recipe
  named by the sampler fits the checkpoint as its LoRAs make it (or the model a GGUF file quantizes, with a VAE of
  its generation), the upsampler, decode tone mapping and fps; a control video comes with an IC-LoRA and the other
  way round; a long video's chunk settings are valid, it really is made in chunks and every per-chunk prompt reaches
  one);
- one note (a UI-only MarkdownNote) names every model file the workflow loads, with its models/ folder, every input
  file, the recipe and what `steps` 0 means;
- the saved view opens at a readable zoom with the whole graph on a 1920x1080 screen, grouped models / prompt and
  media / sampling / output; a thumbnail for ComfyUI's Templates browser beside each;
- the input files exist on a fresh ComfyUI (its example.png) or are the pack's example media (small, decodable),
  which the pack copies into ComfyUI's input folder where absent;
- the UI and API versions describe the same graph;
- the API graph runs through the pack's nodes on tiny models (tiny LoRAs, a tiny GGUF and VAE file included; core
  nodes faked), from loaders to the IMAGE that Create Video receives; a long-video sampler in several chunks.
"""
import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
UI_DIR = REPO / "workflows"
API_DIR = UI_DIR / "api"

# Core node signatures (ComfyUI 0.3.64: nodes.py LoadImage; comfy_extras/nodes_video.py LoadVideo,
# GetVideoComponents, CreateVideo, SaveVideo), as INPUT_TYPES-style dicts; "upload" marks the extra upload widget
# value that follows the file name in UI widgets_values.
CORE_NODES = {
    "LoadImage": ({"required": {"image": ("FILE:image", {"upload": True})}}, ("IMAGE", "MASK"), False),
    "LoadVideo": ({"required": {"file": ("FILE:video", {"upload": True})}}, ("VIDEO",), False),
    "GetVideoComponents": ({"required": {"video": ("VIDEO", {})}}, ("IMAGE", "AUDIO", "FLOAT"), False),
    "CreateVideo": ({"required": {"images": ("IMAGE", {}),
                                  "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0})},
                     "optional": {"audio": ("AUDIO", {})}}, ("VIDEO",), False),
    "SaveVideo": ({"required": {"video": ("VIDEO", {}), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                                "format": (["auto", "mp4"], {}), "codec": (["auto", "h264"], {})}}, (), True),
}
FILE_EXTENSIONS = {"FILE:image": (".png", ".jpg", ".jpeg", ".webp"), "FILE:video": (".mp4", ".webm", ".mov", ".mkv")}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
EXPECTED = {"ltxv-2b-0.9.6-dev-text-to-video", "ltxv-2b-0.9.6-dev-image-to-video",
            "ltxv-2b-0.9.6-distilled-first-last-frame", "ltxv-2b-0.9.6-dev-extend-video",
            "ltxv-13b-0.9.8-distilled-multiscale", "ltxv-13b-0.9.7-dev-distilled-lora-text-to-video",
            "ltxv-13b-0.9.7-distilled-ic-lora-pose", "ltxv-13b-0.9.8-distilled-gguf",
            "ltxv-13b-0.9.8-distilled-long-image-to-video"}
# Frontend-only nodes: in the UI file, not in the API graph, never executed.
UI_ONLY = {"Note", "MarkdownNote"}
# Sampler nodes (the long-video one takes the sampler's recipe inputs).
SAMPLERS = ("LTXVStackSampler", "LTXVStackLongSampler")


from node_pack import PACK, import_pack  # noqa: E402

pack = import_pack()
loaders = sys.modules[f"{PACK}.nodes.loaders"]
long_video = importlib.import_module(f"{PACK}.ltx_core.pipelines.long_video")
app_text = importlib.import_module(f"{PACK}.ltx_core.app.text")
official = sys.modules[f"{PACK}.ltx_core.presets.official"]
releases = sys.modules[f"{PACK}.ltx_core.loader.releases"]
OFFICIAL = official.OFFICIAL_CONFIGS
# GGUF quantizations and the VAE files beside them, as QuantStack names them on Hugging Face
# (QuantStack/LTXV-13B-0.9.8-{dev,distilled}-GGUF: LTXV-13B-0.9.8-distilled-Q2_K.gguf ..., and
# vae/LTXV-13B-0.9.8-distilled-VAE.safetensors). ltx_core lists no official GGUF names: the pattern stands in. The
# quantization suffixes are llama.cpp's file types, made of the tensor types ltx_core reads.
GGUF_QUANTS = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_1", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_S",
               "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16", "F32")
OFFICIAL_GGUF = re.compile(r"(?P<model>LTXV-13B-0\.9\.8-(?:dev|distilled))-(?P<quant>" + "|".join(GGUF_QUANTS)
                           + r")\.gguf")
OFFICIAL_VAE_FILES = re.compile(r"(?P<model>LTXV-13B-0\.9\.8-(?:dev|distilled))-VAE\.safetensors")
MODEL_FILES = {"ckpt_name": loaders.OFFICIAL_CHECKPOINTS, "text_encoder_name": loaders.OFFICIAL_TEXT_ENCODERS,
               "upscale_model_name": loaders.OFFICIAL_UPSAMPLERS, "lora_name": official.OFFICIAL_LORAS,
               "model_name": OFFICIAL_GGUF, "vae_name": OFFICIAL_VAE_FILES}
MODEL_FOLDERS = {"ckpt_name": "checkpoints", "text_encoder_name": "text_encoders",
                 "upscale_model_name": "latent_upscale_models", "lora_name": "loras",
                 "model_name": "diffusion_models", "vae_name": "vae"}
# A LoRA that makes a checkpoint another model: the 13B 0.9.7 distilled LoRA turns the dev checkpoint into the
# distilled one, sampled with the distilled recipe. (checkpoint, LoRA) -> the checkpoint the recipe is for.
LORA_MAKES = {(f"ltxv-13b-0.9.7-dev{fp8}.safetensors", "ltxv-13b-0.9.7-distilled-lora128.safetensors"):
              f"ltxv-13b-0.9.7-distilled{fp8}.safetensors" for fp8 in ("", "-fp8")}
NAMES = sorted(p.stem for p in UI_DIR.glob("*.json"))


def signature(node_type):
    if node_type in pack.NODE_CLASS_MAPPINGS:
        cls = pack.NODE_CLASS_MAPPINGS[node_type]
        return cls.INPUT_TYPES(), tuple(cls.RETURN_TYPES), bool(getattr(cls, "OUTPUT_NODE", False))
    if node_type in CORE_NODES:
        return CORE_NODES[node_type]
    raise AssertionError(f"unknown node type {node_type!r}")


def all_inputs(spec):
    return {**spec.get("required", {}), **spec.get("optional", {})}


def is_widget(entry):
    return isinstance(entry[0], list) or entry[0] in WIDGET_TYPES or str(entry[0]).startswith("FILE:")


def widget_layout(spec):
    """[(input name or None for an extra value, kind)] in widgets_values order."""
    out = []
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            if is_widget(entry):
                out.append((name, entry))
                if entry[1].get("control_after_generate"):
                    out.append((None, "control"))
                if entry[1].get("upload"):
                    out.append((None, "upload"))
    return out


def is_official_file(input_name, value):
    known = MODEL_FILES[input_name]
    return bool(known.fullmatch(value)) if isinstance(known, re.Pattern) else value in known


def gguf_checkpoint(model_name):
    """The official checkpoint a GGUF file quantizes: LTXV-13B-0.9.8-distilled-Q4_K_M.gguf ->
    ltxv-13b-0.9.8-distilled.safetensors."""
    return OFFICIAL_GGUF.fullmatch(model_name)["model"].lower() + ".safetensors"


def test_official_gguf_and_vae_names():
    assert is_official_file("model_name", "LTXV-13B-0.9.8-distilled-Q2_K.gguf")
    assert is_official_file("model_name", "LTXV-13B-0.9.8-dev-Q8_0.gguf")
    assert gguf_checkpoint("LTXV-13B-0.9.8-distilled-Q4_K_M.gguf") == "ltxv-13b-0.9.8-distilled.safetensors"
    for name in ("LTXV-13B-0.9.8-distilled-Q4_K_M.safetensors", "LTXV-13B-0.9.7-distilled-Q4_K_M.gguf",
                 "LTXV-13B-0.9.8-distilled-IQ4_XS.gguf", "ltxv-2b-0.9.8-distilled-Q8_0.gguf"):
        assert not is_official_file("model_name", name), name
    assert is_official_file("vae_name", "LTXV-13B-0.9.8-distilled-VAE.safetensors")
    assert not is_official_file("vae_name", "LTX-Video-VAE-BF16.safetensors")  # the 0.9.0 VAE


def check_value(where, name, entry, value):
    kind, opts = entry
    if name in MODEL_FILES:
        assert is_official_file(name, value), f"{where}: {value!r} is not an official {name} file name"
    elif isinstance(kind, list):
        assert value in kind, f"{where}: {value!r} not in {kind}"
    elif str(kind).startswith("FILE:"):
        assert isinstance(value, str) and value.lower().endswith(FILE_EXTENSIONS[kind]), f"{where}: {value!r}"
    elif kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an INT"
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {value!r} is not a FLOAT"
    elif kind == "STRING":
        assert isinstance(value, str), f"{where}: {value!r} is not a STRING"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), f"{where}: {value!r} is not a BOOLEAN"
    if kind in ("INT", "FLOAT"):
        assert opts.get("min", -float("inf")) <= value <= opts.get("max", float("inf")), f"{where}: {value} out of range"


def load(name):
    ui = json.loads((UI_DIR / f"{name}.json").read_text())
    api = json.loads((API_DIR / f"{name}.json").read_text())
    return ui, api


def test_every_workflow_is_there():
    assert set(NAMES) == EXPECTED
    assert sorted(p.stem for p in API_DIR.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_is_valid(name):
    ui, _ = load(name)
    assert ui["version"] == 0.4 and isinstance(ui["id"], str)
    for key in ("nodes", "links", "groups", "config", "extra", "last_node_id", "last_link_id"):
        assert key in ui
    all_nodes = {n["id"]: n for n in ui["nodes"]}
    assert len(all_nodes) == len(ui["nodes"]) and ui["last_node_id"] >= max(all_nodes)
    links = {link[0]: link for link in ui["links"]}
    assert len(links) == len(ui["links"]) and ui["last_link_id"] >= max(links)
    for n in _notes(ui):
        assert n["mode"] == 0 and n["inputs"] == [] and n["outputs"] == [], f"{name}: note {n['id']}"
        assert len(n["widgets_values"]) == 1 and isinstance(n["widgets_values"][0], str), f"{name}: note {n['id']}"
    nodes = {nid: n for nid, n in all_nodes.items() if n["type"] not in UI_ONLY}

    for n in nodes.values():
        where = f"{name}: node {n['id']} {n['type']}"
        spec, returns, _ = signature(n["type"])
        inputs = all_inputs(spec)
        assert n["mode"] == 0 and n["properties"]["Node name for S&R"] == n["type"]
        # sockets
        listed = [i["name"] for i in n["inputs"]]
        assert len(set(listed)) == len(listed), where
        for i in n["inputs"]:
            assert i["name"] in inputs, f"{where}: unknown input {i['name']}"
            entry = inputs[i["name"]]
            if is_widget(entry):
                assert i.get("widget") == {"name": i["name"]} and i["link"] is not None, f"{where}: {i['name']}"
            assert i["type"] == (entry[0] if not isinstance(entry[0], list) else "COMBO"), f"{where}: {i['name']}"
        for section in ("required", "optional"):
            for iname, entry in spec.get(section, {}).items():
                if not is_widget(entry):
                    assert iname in listed, f"{where}: socket {iname} missing from inputs"
                    if section == "required":
                        assert next(i for i in n["inputs"] if i["name"] == iname)["link"] is not None, \
                            f"{where}: required input {iname} is not connected"
        assert [o["type"] for o in n["outputs"]] == list(returns), where
        # widgets
        layout = widget_layout(spec)
        values = n["widgets_values"]
        assert len(values) == len(layout), f"{where}: {len(values)} widget values for {len(layout)} widgets"
        for (wname, entry), value in zip(layout, values, strict=True):
            if wname is None:
                assert value in (CONTROL_VALUES if entry == "control" else {"image"}), f"{where}: {value!r}"
            else:
                check_value(f"{where}.{wname}", wname, entry, value)

    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        where = f"{name}: link {link_id}"
        _, returns, _ = signature(nodes[src]["type"])
        assert returns[src_slot] == kind, where
        assert link_id in nodes[src]["outputs"][src_slot]["links"], where
        target = nodes[dst]["inputs"][dst_slot]
        assert target["link"] == link_id and target["type"] == kind, where
    for n in nodes.values():
        for slot, o in enumerate(n["outputs"]):
            for link_id in o["links"]:
                assert links[link_id][1:3] == [n["id"], slot]
        for slot, i in enumerate(n["inputs"]):
            if i["link"] is not None:
                assert links[i["link"]][3:5] == [n["id"], slot]

    # every node feeds an output node
    outputs = {nid for nid, n in nodes.items() if signature(n["type"])[2]}
    assert outputs, f"{name}: no output node"
    feeding, frontier = set(outputs), list(outputs)
    while frontier:
        nid = frontier.pop()
        for i in nodes[nid]["inputs"]:
            if i["link"] is not None and links[i["link"]][1] not in feeding:
                feeding.add(links[i["link"]][1])
                frontier.append(links[i["link"]][1])
    assert feeding == set(nodes), f"{name}: nodes {set(nodes) - feeding} lead nowhere"


def _notes(ui):
    return [n for n in ui["nodes"] if n["type"] in UI_ONLY]


@pytest.mark.parametrize("name", NAMES)
def test_notes_name_the_model_files(name):
    """One note, naming every model file with its models/ folder, every input file, the recipe (the sampler's
    preset) and what `steps` 0 means."""
    ui, api = load(name)
    files = {(MODEL_FOLDERS[k], v) for entry in api.values() for k, v in entry["inputs"].items() if k in MODEL_FOLDERS}
    notes = _notes(ui)
    assert len(notes) == 1, f"{name}: {len(notes)} notes"
    text = notes[0]["widgets_values"][0]
    for folder, file in sorted(files):
        assert file in text and f"{folder}/" in text, f"{name}: the note does not say {folder}/{file}"
    for _, entry in _find(api, "LoadImage", "LoadVideo"):
        media = entry["inputs"].get("image", entry["inputs"].get("file"))
        assert media in text, f"{name}: the note does not name the input {media}"
    for _, sampler in _find(api, *SAMPLERS):
        assert sampler["inputs"]["preset"] in text and "`steps` 0" in text, f"{name}: the note's recipe"


# ----------------------------------------------------------------------------------------------------------------
# layout (as the frontend opens it: tests/test_comfyui_frontend.py checks the same in the real frontend)

GROUP_TITLES = ["Models", "Prompt and media", "Sampling", "Output"]
# The canvas of a 1920x1080 browser window, ComfyUI's menus around it; the zoom below which labels get hard to read.
SCREEN, MIN_SCALE = (1856, 1002), 0.75
TITLE_HEIGHT = 30  # a node's title bar, above its pos


def _inside(box, bounding):
    x, y, w, h = bounding
    return x <= box[0] and y <= box[1] and box[2] <= x + w and box[3] <= y + h


@pytest.mark.parametrize("name", NAMES)
def test_ui_opens_fitted_and_grouped(name):
    """Saved view: readable zoom, the whole graph (nodes, groups) on one screen. Groups: models / prompt and media /
    sampling / output, each node inside exactly one (the note outside them)."""
    ui, _ = load(name)
    ds = ui["extra"]["ds"]
    scale, (ox, oy) = ds["scale"], ds["offset"]
    assert scale >= MIN_SCALE, f"{name}: opens at zoom {scale}"
    assert [g["title"] for g in ui["groups"]] == GROUP_TITLES
    boxes = [(n, [n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1]])
             for n in ui["nodes"]]
    for thing, (x0, y0, x1, y1) in boxes + [(g, [g["bounding"][0], g["bounding"][1], g["bounding"][0] +
                                                 g["bounding"][2], g["bounding"][1] + g["bounding"][3]])
                                            for g in ui["groups"]]:
        on_screen = [(x0 + ox) * scale, (y0 + oy) * scale, (x1 + ox) * scale, (y1 + oy) * scale]
        assert on_screen[0] >= 0 and on_screen[1] >= 0 and on_screen[2] <= SCREEN[0] and on_screen[3] <= SCREEN[1], \
            f"{name}: {thing.get('title') or thing['type']} at {[round(v) for v in on_screen]} is off screen"
    for n, box in boxes:
        homes = [g["title"] for g in ui["groups"] if _inside(box, g["bounding"])]
        assert homes == ([] if n["type"] in UI_ONLY else homes[:1]) and (homes or n["type"] in UI_ONLY), \
            f"{name}: node {n['id']} {n['type']} is in groups {homes}"


# ----------------------------------------------------------------------------------------------------------------
# inputs: what a fresh ComfyUI has (its input/example.png) or the pack's example media, copied there at load time

EXAMPLE_MEDIA = REPO / "example_media"
COMFYUI_INPUTS = {"example.png"}


@pytest.mark.parametrize("name", NAMES)
def test_inputs_exist_on_a_fresh_comfyui(name):
    _, api = load(name)
    for _, entry in _find(api, "LoadImage", "LoadVideo"):
        media = entry["inputs"].get("image", entry["inputs"].get("file"))
        assert media in COMFYUI_INPUTS or (EXAMPLE_MEDIA / media).is_file(), f"{name}: nobody has {media}"


def test_example_media_decode():
    """Each file is small and decodes: the images at the 2B workflows' 768x512, the clip 8k+1 frames, the pose video
    as long as the IC-LoRA workflow's video; both videos at 24 fps (the workflows take the frame rate from them)."""
    import av
    from PIL import Image

    files = sorted(p.name for p in EXAMPLE_MEDIA.iterdir())
    assert files == ["ltxv_example_clip.mp4", "ltxv_example_first_frame.png", "ltxv_example_last_frame.png",
                     "ltxv_example_pose.mp4"]
    for f in files:
        assert (EXAMPLE_MEDIA / f).stat().st_size < 64 * 1024, f
    for f in ("ltxv_example_first_frame.png", "ltxv_example_last_frame.png"):
        with Image.open(EXAMPLE_MEDIA / f) as im:
            im.load()
            assert im.size == (768, 512), f
    for f, (frames, fps) in {"ltxv_example_clip.mp4": (25, 24), "ltxv_example_pose.mp4": (121, 24)}.items():
        with av.open(str(EXAMPLE_MEDIA / f)) as c:
            count = sum(1 for _ in c.decode(video=0))
            assert (count, float(c.streams.video[0].average_rate)) == (frames, fps), f


def test_example_media_copied_only_where_absent(tmp_path):
    (tmp_path / "ltxv_example_clip.mp4").write_bytes(b"the user's own clip")
    copied = pack.offer_example_media(tmp_path)
    assert copied == ["ltxv_example_first_frame.png", "ltxv_example_last_frame.png", "ltxv_example_pose.mp4"]
    assert (tmp_path / "ltxv_example_clip.mp4").read_bytes() == b"the user's own clip"
    for f in copied:
        assert (tmp_path / f).read_bytes() == (EXAMPLE_MEDIA / f).read_bytes()
    assert pack.offer_example_media(tmp_path) == []
    assert pack.offer_example_media(tmp_path / "new" / "input") == sorted(p.name for p in EXAMPLE_MEDIA.iterdir())


@pytest.mark.parametrize("name", NAMES)
def test_templates_browser_thumbnail(name):
    """ComfyUI's Templates browser shows workflows/<name>.jpg on the workflow's card."""
    from PIL import Image

    jpg = UI_DIR / f"{name}.jpg"
    assert jpg.is_file() and jpg.stat().st_size < 64 * 1024, f"{name}: no small thumbnail"
    with Image.open(jpg) as im:
        assert im.format == "JPEG" and min(im.size) >= 256, f"{name}: {im.format} {im.size}"


HF_DOWNLOAD = re.compile(r"https://huggingface\.co/(?P<repo>[\w.-]+/[\w.-]+)/resolve/main/(?P<path>[\w.-]+(?:/[\w.-]+)*)")


@pytest.mark.parametrize("name", NAMES)
def test_ui_lists_model_downloads(name):
    """The top-level `models` list (the frontend's missing-models dialog offers these downloads): one entry per model
    file the loader nodes name, in the folder that loader reads, with a direct Hugging Face download of that file
    from a repo the note names."""
    ui, _ = load(name)
    expected = set()
    for n in ui["nodes"]:
        if n["type"] not in UI_ONLY:
            expected |= {(MODEL_FOLDERS[k], v) for k, v in _widgets_by_name(n).items() if k in MODEL_FOLDERS}
    assert expected, f"{name}: no model files"
    models = ui.get("models")
    assert isinstance(models, list), f"{name}: no top-level models list"
    for m in models:
        assert set(m) == {"name", "url", "directory"}, f"{name}: {m}"
    listed = [(m["directory"], m["name"]) for m in models]
    assert len(set(listed)) == len(listed), f"{name}: duplicate models entries"
    assert set(listed) == expected, f"{name}: models {sorted(set(listed))} != loaded files {sorted(expected)}"
    notes = "\n".join(n["widgets_values"][0] for n in _notes(ui))
    for m in models:
        match = HF_DOWNLOAD.fullmatch(m["url"])
        assert match, f"{name}: {m['url']} is not a Hugging Face resolve/main download"
        assert match["path"].rsplit("/", 1)[-1] == m["name"], f"{name}: {m['url']} does not download {m['name']}"
        if notes:
            assert re.search(rf"Hugging Face {re.escape(match['repo'])}(?![\w/-])", notes), \
                f"{name}: the note does not name {match['repo']}"


def _widgets_by_name(node):
    spec, _, _ = signature(node["type"])
    return {w: v for (w, _), v in zip(widget_layout(spec), node["widgets_values"], strict=True) if w is not None}


@pytest.mark.parametrize("name", NAMES)
def test_api_matches_ui(name):
    ui, api = load(name)
    graph = [n for n in ui["nodes"] if n["type"] not in UI_ONLY]
    assert set(api) == {str(n["id"]) for n in graph}
    links = {link[0]: link for link in ui["links"]}
    for n in graph:
        entry = api[str(n["id"])]
        assert entry["class_type"] == n["type"]
        expected = _widgets_by_name(n)
        for i in n["inputs"]:
            if i["link"] is not None:
                src, slot = links[i["link"]][1:3]
                expected[i["name"]] = [str(src), slot]
        assert entry["inputs"] == expected, f"{name}: node {n['id']} {n['type']}"
        spec, _, _ = signature(n["type"])
        assert set(spec.get("required", {})) <= set(entry["inputs"]), f"{name}: node {n['id']} lacks inputs"


def _find(api, *class_types):
    return [(k, v) for k, v in api.items() if v["class_type"] in class_types]


def _model_chain(api, ref):
    """(checkpoint file, LoRA files from the checkpoint on) behind a model input; for a GGUF file, the checkpoint it
    quantizes."""
    loras, node = [], api[ref[0]]
    while node["class_type"] == "LTXVStackLoraLoader":
        loras.insert(0, node["inputs"]["lora_name"])
        node = api[node["inputs"]["model"][0]]
    if node["class_type"] == "LTXVStackModelLoader":
        return gguf_checkpoint(node["inputs"]["model_name"]), loras
    assert node["class_type"] == "LTXVStackCheckpointLoader"
    return node["inputs"]["ckpt_name"], loras


def _check_model_loader(name, api, preset):
    """A transformer-only file: the release it is loaded as (from its name, or chosen) is the preset's, and its VAE
    file is of that release's VAE generation."""
    for _, loader in _find(api, "LTXVStackModelLoader"):
        inputs = loader["inputs"]
        chosen = inputs["release"]
        release = releases.release_from_name(inputs["model_name"]) if chosen == "auto" else chosen
        assert release == releases.release_from_name(preset["checkpoint_path"]), \
            f"{name}: {inputs['model_name']} loads as release {release}, the preset is for {preset['checkpoint_path']}"
        vae = api[inputs["vae"][0]]
        assert vae["class_type"] == "LTXVStackVAELoader", f"{name}: the model loader's VAE is not a VAE file"
        vae_release = releases.release_from_name(vae["inputs"]["vae_name"])
        assert vae_release and releases.RELEASES[vae_release].vae_generation == \
            releases.RELEASES[release].vae_generation, f"{name}: {vae['inputs']['vae_name']} is not a {release} VAE"


def _conditioning_nodes(api, ref):
    """The class types of the conditioning chain behind a conditioning input."""
    out, node = [], api[ref[0]]
    while "conditioning" in node["inputs"]:
        out.append(node["class_type"])
        node = api[node["inputs"]["conditioning"][0]]
    return out + [node["class_type"]]


def _effective_checkpoint(ckpt, loras):
    for lora in loras:
        ckpt = LORA_MAKES.get((ckpt, lora), ckpt)
    return ckpt


def test_lora_makes_dev_distilled():
    # the rule the recipe check below applies: LoRAs in chain order, only the distilled LoRA on 0.9.7 dev
    assert _effective_checkpoint("ltxv-13b-0.9.7-dev.safetensors", ["ltxv-13b-0.9.7-distilled-lora128.safetensors"]) \
        == "ltxv-13b-0.9.7-distilled.safetensors"
    assert _effective_checkpoint("ltxv-13b-0.9.8-dev.safetensors", ["ltxv-13b-0.9.7-distilled-lora128.safetensors"]) \
        == "ltxv-13b-0.9.8-dev.safetensors"
    assert _effective_checkpoint("ltxv-13b-0.9.7-dev.safetensors", []) == "ltxv-13b-0.9.7-dev.safetensors"


@pytest.mark.parametrize("name", NAMES)
def test_recipe_fits_the_models(name):
    _, api = load(name)
    for _, sampler in _find(api, *SAMPLERS):
        inputs = sampler["inputs"]
        preset = OFFICIAL[inputs["preset"]]
        ckpt, loras = _model_chain(api, inputs["model"])
        assert _effective_checkpoint(ckpt, loras) == preset["checkpoint_path"], \
            f"{name}: preset and checkpoint (with LoRAs {loras}) differ"
        _check_model_loader(name, api, preset)
        # Lightricks' LoRAs are all for the 13B model
        assert not loras or ckpt.startswith("ltxv-13b-"), f"{name}: 13B LoRAs on {ckpt}"
        ic_loras = [lora for lora in loras if "-ic-lora-" in lora]
        controls = _conditioning_nodes(api, inputs["conditioning"]).count("LTXVStackAddControlVideo")
        assert bool(controls) == bool(ic_loras), f"{name}: a control video needs an IC-LoRA and the other way round"
        if preset["pipeline_type"] == "multi-scale":
            up = api[inputs["upscale_model"][0]]
            assert up["inputs"]["upscale_model_name"] == preset["spatial_upscaler_model_path"]
        last = preset.get("second_pass", {}) if preset["pipeline_type"] == "multi-scale" else preset
        for _, dec in _find(api, "LTXVStackVAEDecode"):
            assert dec["inputs"]["tone_map_compression"] == last.get("tone_map_compression_ratio", 0.0)
            assert dec["inputs"]["decode_timestep"] == preset["decode_timestep"]
            assert dec["inputs"]["decode_noise_scale"] == preset["decode_noise_scale"]
    (_, te), = _find(api, "LTXVStackTextEncode")
    (_, video), = _find(api, "CreateVideo")
    assert te["inputs"]["frame_rate"] == video["inputs"]["fps"], f"{name}: generation and video frame rates differ"


def _prompt_behind(api, ref):
    """The prompt of the Text Encode behind a conditioning input."""
    node = api[ref[0]]
    while node["class_type"] != "LTXVStackTextEncode":
        node = api[node["inputs"]["conditioning"][0]]
    return node["inputs"]["prompt"]


def _chunk_count(inputs):
    """How many chunks a long-video sampler's settings make (TemporalTiling refuses invalid ones)."""
    tiling = long_video.TemporalTiling(inputs["tile_frames"], inputs["overlap_frames"], inputs["overlap_strength"],
                                       inputs["adain_factor"])
    latent_frames = (inputs["num_frames"] - 1) // 8 + 1
    return len(long_video.chunk_starts(latent_frames, tiling.tile_latents, tiling.overlap_latents))


@pytest.mark.parametrize("name", NAMES)
def test_long_videos_are_made_in_chunks(name):
    """A long-video sampler's chunk settings are valid, its video (8k+1 frames) is longer than a chunk (else it
    would be the plain sampler's), and every per-chunk prompt ('|' in Text Encode) gets a chunk; the plain sampler
    gets no per-chunk prompts (it refuses them)."""
    _, api = load(name)
    for _, sampler in _find(api, *SAMPLERS):
        inputs = sampler["inputs"]
        prompts = app_text.chunk_prompts(_prompt_behind(api, inputs["conditioning"]))
        if sampler["class_type"] == "LTXVStackSampler":
            assert len(prompts) == 1, f"{name}: the plain sampler refuses a prompt with '|'"
            continue
        assert inputs["num_frames"] % 8 == 1 and inputs["num_frames"] > inputs["tile_frames"], \
            f"{name}: {inputs['num_frames']} frames fit in one {inputs['tile_frames']}-frame chunk"
        chunks = _chunk_count(inputs)
        assert 1 < chunks and len(prompts) <= chunks, f"{name}: {len(prompts)} prompts for {chunks} chunks"


def test_chunk_count_rule():
    # the 20 s workflow's numbers: 601 frames = 76 latent frames in chunks of 10 that share 3: 11 chunks
    assert _chunk_count({"num_frames": 601, "tile_frames": 73, "overlap_frames": 24, "overlap_strength": 0.5,
                         "adain_factor": 0.2}) == 11
    assert _chunk_count({**LONG_TINY, "overlap_strength": 0.5, "adain_factor": 0.0}) == 3


# ----------------------------------------------------------------------------------------------------------------
# running the API graphs on tiny models


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, t5_tokenizer_dir):
    pytest.importorskip("ltx_video")
    import official_files as of
    import tiny_lora
    import tiny_t5
    import tiny_upsampler

    root = tmp_path_factory.mktemp("wf_models")
    for d in ("checkpoints", "text_encoders", "latent_upscale_models", "loras", "diffusion_models", "vae"):
        (root / d).mkdir()
    te = tiny_t5.tiny_t5()
    tiny_t5.save_single(tiny_t5.encoder_state(te, torch.float32), root / "text_encoders" / "t5.safetensors")
    tiny_t5.copy_tokenizer(t5_tokenizer_dir, root / "text_encoders" / "tokenizer")
    # 20 blocks, so the 2B recipes' STG block 19 exists
    transformer, _, _ = of.tiny_checkpoint(root / "checkpoints" / "ltxv.safetensors", transformer_overrides={
        "caption_channels": te.config.d_model, "num_layers": 20})
    up, cfg = tiny_upsampler.reference_upsampler()
    tiny_upsampler.save_official(up, cfg, root / "latent_upscale_models" / "up.safetensors")
    # LoRAs for the tiny transformer: a plain one (as the distilled LoRA) and an IC-LoRA with its metadata
    tiny_lora.write_lora(root / "loras" / "lora.safetensors", tiny_lora.random_lora(transformer, rank=4, seed=1),
                         "comfyui")
    tiny_lora.write_lora(root / "loras" / "ic-lora.safetensors",
                         tiny_lora.random_lora(transformer, tiny_lora.TARGETS[:4], rank=2, seed=2), "comfyui",
                         metadata={"reference_downscale_factor": "1"})
    _tiny_gguf_and_vae(root, te.config.d_model)
    bridge = sys.modules[f"{PACK}.nodes.comfy_bridge"]
    bridge.set_models_root(root)
    loras = {name: "ic-lora.safetensors" if "-ic-lora-" in name else "lora.safetensors"
             for name in official.OFFICIAL_LORAS}
    return {"ckpt_name": "ltxv.safetensors", "text_encoder_name": "t5.safetensors",
            "upscale_model_name": "up.safetensors", "lora_name": loras, "model_name": TINY_GGUF,
            "vae_name": "vae.safetensors", "width": 96, "height": 64, "num_frames": 17, "steps": 2}


# The release is in the name, so release "auto" finds it as in the official file names.
TINY_GGUF = "tiny-ltxv-13b-0.9.8-distilled-Q8_0.gguf"


def _tiny_gguf_and_vae(root, caption_channels):
    """A tiny 13B transformer as Q8_0 GGUF and a 0.9.5+ VAE file. GGUF files carry no head count (the loader takes
    the 32 heads of every release): 32 heads of 2, so every quantized row (64 or 256 wide) is whole Q8_0 blocks;
    20 blocks like the tiny checkpoint."""
    import tiny_gguf
    import tiny_transformer
    import tiny_vae
    from safetensors.torch import save_file

    ref, _ = tiny_transformer.tiny_reference("13b", True, num_attention_heads=32, attention_head_dim=2,
                                             cross_attention_dim=64, caption_channels=caption_channels, num_layers=20)
    tiny_gguf.write_gguf(root / "diffusion_models" / TINY_GGUF, ref.state_dict(), "Q8_0")
    _, cfg, sd = tiny_vae.tiny_vae("0.9.5")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(root / "vae" / "vae.safetensors"),
              metadata={"config": json.dumps({"vae": cfg})})


class _FakeCore:
    """Core nodes, faked just enough to feed and check ours."""

    def __init__(self):
        self.saved = []

    def LoadImage(self, image):
        return torch.rand(1, 72, 100, 3), torch.zeros(1, 72, 100)

    def LoadVideo(self, file):
        return ({"frames": torch.rand(10, 64, 96, 3), "fps": 24.0},)

    def GetVideoComponents(self, video):
        return video["frames"], None, video["fps"]

    def CreateVideo(self, images, fps, audio=None):
        assert images.dim() == 4 and images.shape[-1] == 3 and 0 <= float(images.min()) <= float(images.max()) <= 1
        return ({"images": images, "fps": fps},)

    def SaveVideo(self, video, filename_prefix, format, codec):
        self.saved.append(video)
        return ()


def execute(api, overrides):
    """Run the graph's output nodes; returns (what SaveVideo got, every node's outputs by id). `overrides` replaces
    widget values by input name: a value, or a dict from the workflow's value to the replacement (e.g. official
    LoRA names to tiny files)."""
    core, results = _FakeCore(), {}

    def value(node_id):
        if node_id in results:
            return results[node_id]
        entry = api[node_id]
        kwargs = {}
        for k, v in entry["inputs"].items():
            if isinstance(v, list):
                kwargs[k] = value(v[0])[v[1]]
            else:
                o = overrides.get(k, v)
                kwargs[k] = o[v] if isinstance(o, dict) else o
        cls = pack.NODE_CLASS_MAPPINGS.get(entry["class_type"])
        out = getattr(cls(), cls.FUNCTION)(**kwargs) if cls else getattr(core, entry["class_type"])(**kwargs)
        results[node_id] = out
        return out

    for node_id, entry in api.items():
        if signature(entry["class_type"])[2]:
            value(node_id)
    return core.saved, results


# A long-video sampler on tiny models: 57 frames (8 latent frames) in chunks of 25 (4) sharing 16 (2): 3 chunks.
LONG_TINY = {"num_frames": 57, "tile_frames": 25, "overlap_frames": 16}


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_runs_on_tiny_models(name, tiny_models, monkeypatch):
    _, api = load(name)
    long_samplers = _find(api, "LTXVStackLongSampler")
    overrides = {**tiny_models, **(LONG_TINY if long_samplers else {})}
    plans, plan_chunks = [], long_video.plan_chunks
    monkeypatch.setattr(long_video, "plan_chunks", lambda *a, **k: plans.append(plan_chunks(*a, **k)) or plans[-1])
    saved, results = execute(api, overrides)
    assert len(saved) == 1
    frames = saved[0]["images"]
    assert frames.shape == (overrides["num_frames"], 64, 96, 3)
    # a long video was made in chunks, one prompt each (the last repeating), each keyframe in one chunk
    assert len(plans) == len(long_samplers), name
    for (_, sampler), chunks in zip(long_samplers, plans, strict=True):
        texts = results[sampler["inputs"]["conditioning"][0]][0].texts
        prompts = app_text.chunk_prompts(_prompt_behind(api, sampler["inputs"]["conditioning"]))
        assert len(chunks) == 3 and len(texts) == len(prompts) > 1, name
        for k, chunk in enumerate(chunks):
            assert torch.equal(chunk.text.embeds, texts[min(k, len(texts) - 1)].embeds), f"{name}: chunk {k}"
        keyframes = _conditioning_nodes(api, sampler["inputs"]["conditioning"]).count("LTXVStackAddImage")
        assert sum(len(c.request.conditioning) for c in chunks) == keyframes, f"{name}: keyframes placed once each"
    # the LoRAs and control videos reached the sampler
    for _, sampler in _find(api, *SAMPLERS):
        model = results[sampler["inputs"]["model"][0]][0]
        conditioning = results[sampler["inputs"]["conditioning"][0]][0]
        assert len(model.loras) == len(_model_chain(api, sampler["inputs"]["model"])[1]), name
        assert len(conditioning.controls) == _conditioning_nodes(api, sampler["inputs"]["conditioning"]).count(
            "LTXVStackAddControlVideo"), name
    # a GGUF model samples with its weights still quantized, and decodes with the VAE file's VAE
    for loader_id, loader in _find(api, "LTXVStackModelLoader"):
        model = results[loader_id][0]
        assert any(getattr(m, "quant_type", None) == "Q8_0" for m in model.module.modules()), name
        assert model.vae is results[loader["inputs"]["vae"][0]][0], name
