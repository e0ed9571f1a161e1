"""Official pipeline configs: every official yaml, with its values."""

import pytest

from ltx_core.presets import load_pipeline_config, preset_names

DISTILLED_8 = [1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219]
DEV_GUIDANCE_TIMESTEPS = [1.0, 0.996, 0.9933, 0.9850, 0.9767, 0.9008, 0.6180]
SHARED = {
    "stg_mode": "attention_values", "decode_timestep": 0.05, "decode_noise_scale": 0.025,
    "sampler": "from_checkpoint", "text_encoder_model_name_or_path": "PixArt-alpha/PixArt-XL-2-1024-MS",
    "prompt_enhancement_words_threshold": 120,
    "prompt_enhancer_image_caption_model_name_or_path": "MiaoshouAI/Florence-2-large-PromptGen-v2.0",
    "prompt_enhancer_llm_model_name_or_path": "unsloth/Llama-3.2-3B-Instruct",
}
# name -> (checkpoint, precision)
BASE = {
    "ltxv-2b-0.9": "ltx-video-2b-v0.9.safetensors",
    "ltxv-2b-0.9.1": "ltx-video-2b-v0.9.1.safetensors",
    "ltxv-2b-0.9.5": "ltx-video-2b-v0.9.5.safetensors",
    "ltxv-2b-0.9.6-dev": "ltxv-2b-0.9.6-dev-04-25.safetensors",
}
MULTI = ["ltxv-13b-0.9.7-dev", "ltxv-13b-0.9.7-dev-fp8", "ltxv-13b-0.9.7-distilled", "ltxv-13b-0.9.7-distilled-fp8",
         "ltxv-13b-0.9.8-dev", "ltxv-13b-0.9.8-dev-fp8", "ltxv-13b-0.9.8-distilled", "ltxv-13b-0.9.8-distilled-fp8",
         "ltxv-2b-0.9.8-distilled", "ltxv-2b-0.9.8-distilled-fp8"]


def test_every_official_config_is_there():
    assert set(preset_names()) == set(BASE) | {"ltxv-2b-0.9.6-distilled"} | set(MULTI)


@pytest.mark.parametrize("name", preset_names())
def test_shared_settings(name):
    c = load_pipeline_config(name)
    for k, v in SHARED.items():
        assert c[k] == v, k
    assert c["checkpoint_path"].endswith(".safetensors")


@pytest.mark.parametrize("name", sorted(BASE))
def test_base_dev_configs(name):
    c = load_pipeline_config(name)
    assert c["pipeline_type"] == "base" and c["checkpoint_path"] == BASE[name]
    assert (c["num_inference_steps"], c["guidance_scale"], c["stg_scale"], c["rescaling_scale"]) == (40, 3, 1, 0.7)
    assert c["skip_block_list"] == [19] and c["precision"] == "bfloat16" and c["stochastic_sampling"] is False
    assert "first_pass" not in c and "downscale_factor" not in c


def test_2b_096_distilled():
    c = load_pipeline_config("ltxv-2b-0.9.6-distilled")
    assert c["checkpoint_path"] == "ltxv-2b-0.9.6-distilled-04-25.safetensors" and c["pipeline_type"] == "base"
    assert (c["num_inference_steps"], c["guidance_scale"], c["stg_scale"], c["rescaling_scale"]) == (8, 1, 0, 1)
    assert "skip_block_list" not in c and c["stochastic_sampling"] is True


@pytest.mark.parametrize("name", MULTI)
def test_multi_scale_configs(name):
    c = load_pipeline_config(name)
    version = "0.9.7" if "0.9.7" in name else "0.9.8"
    assert c["pipeline_type"] == "multi-scale" and c["checkpoint_path"] == name + ".safetensors"
    assert c["downscale_factor"] == 0.6666666
    assert c["spatial_upscaler_model_path"] == f"ltxv-spatial-upscaler-{version}.safetensors"
    assert c["precision"] == ("float8_e4m3fn" if name.endswith("-fp8") else "bfloat16")
    assert c["stochastic_sampling"] is False
    f, s = c["first_pass"], c["second_pass"]
    if "-dev" in name:
        assert f["guidance_scale"] == [1, 1, 6, 8, 6, 1, 1] and f["stg_scale"] == [0, 0, 4, 4, 4, 2, 1]
        assert f["rescaling_scale"] == [1, 1, 0.5, 0.5, 1, 1, 1]
        assert f["skip_block_list"] == [[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]]
        assert f["guidance_timesteps"] == DEV_GUIDANCE_TIMESTEPS
        assert (f["num_inference_steps"], f["skip_final_inference_steps"], f["cfg_star_rescale"]) == (30, 3, True)
        assert (s["guidance_scale"], s["stg_scale"], s["rescaling_scale"], s["skip_block_list"]) == ([1], [1], [1], [27])
        assert s["guidance_timesteps"] == [1.0]
        assert (s["num_inference_steps"], s["skip_initial_inference_steps"], s["cfg_star_rescale"]) == (30, 17, True)
    else:
        assert f["timesteps"] == DISTILLED_8[:7] and s["timesteps"] == DISTILLED_8[5:]
        for p in (f, s):
            assert (p["guidance_scale"], p["stg_scale"], p["rescaling_scale"], p["skip_block_list"]) == (1, 0, 1, [42])
        assert "tone_map_compression_ratio" not in f
        if name.startswith("ltxv-13b-0.9.8-distilled"):
            assert s["tone_map_compression_ratio"] == 0.6
        else:
            assert "tone_map_compression_ratio" not in s


def test_returns_fresh_copies_and_aliases():
    a = load_pipeline_config("ltxv-13b-0.9.8-dev")
    a["first_pass"]["guidance_scale"][0] = 99
    assert load_pipeline_config("ltxv-13b-0.9.8-dev")["first_pass"]["guidance_scale"][0] == 1
    want = load_pipeline_config("ltxv-13b-0.9.7-dev")
    assert load_pipeline_config("ltxv-13b-0.9.7-dev.yaml") == want
    assert load_pipeline_config("configs/ltxv-13b-0.9.7-dev.yaml") == want  # inference.py's default


def test_unknown_name_lists_presets():
    with pytest.raises(ValueError) as e:
        load_pipeline_config("ltxv-99b")
    assert "ltxv-99b" in str(e.value) and "ltxv-13b-0.9.8-distilled" in str(e.value)


# Official-style files (the official repository's layout: quoted strings, trailing comments, flow lists, nested
# pass mappings), written out by hand from the values of table A1.
DISTILLED_YAML = """\
pipeline_type: multi-scale
checkpoint_path: "ltxv-13b-0.9.8-distilled.safetensors"
downscale_factor: 0.6666666
spatial_upscaler_model_path: "ltxv-spatial-upscaler-0.9.8.safetensors"
stg_mode: "attention_values" # one of several modes
decode_timestep: 0.05
decode_noise_scale: 0.025
text_encoder_model_name_or_path: "PixArt-alpha/PixArt-XL-2-1024-MS"
precision: "bfloat16"
sampler: "from_checkpoint" # or "uniform", "linear-quadratic"
prompt_enhancement_words_threshold: 120
prompt_enhancer_image_caption_model_name_or_path: "MiaoshouAI/Florence-2-large-PromptGen-v2.0"
prompt_enhancer_llm_model_name_or_path: "unsloth/Llama-3.2-3B-Instruct"
stochastic_sampling: false

first_pass:
  timesteps: [1.0000, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250]
  guidance_scale: 1
  stg_scale: 0
  rescaling_scale: 1
  skip_block_list: [42]

second_pass:
  timesteps: [0.9094, 0.7250, 0.4219]
  guidance_scale: 1
  stg_scale: 0
  rescaling_scale: 1
  skip_block_list: [42]
  tone_map_compression_ratio: 0.6
"""

DEV_YAML = """\
pipeline_type: multi-scale
checkpoint_path: "ltxv-13b-0.9.8-dev-fp8.safetensors"
downscale_factor: 0.6666666
spatial_upscaler_model_path: "ltxv-spatial-upscaler-0.9.8.safetensors"
stg_mode: "attention_values"
decode_timestep: 0.05
decode_noise_scale: 0.025
text_encoder_model_name_or_path: "PixArt-alpha/PixArt-XL-2-1024-MS"
precision: "float8_e4m3fn" # needs fp8 kernels in the official script
sampler: "from_checkpoint"
prompt_enhancement_words_threshold: 120
prompt_enhancer_image_caption_model_name_or_path: "MiaoshouAI/Florence-2-large-PromptGen-v2.0"
prompt_enhancer_llm_model_name_or_path: "unsloth/Llama-3.2-3B-Instruct"
stochastic_sampling: false

first_pass:
  guidance_scale: [1, 1, 6, 8, 6, 1, 1]
  stg_scale: [0, 0, 4, 4, 4, 2, 1]
  rescaling_scale: [1, 1, 0.5, 0.5, 1, 1, 1]
  guidance_timesteps: [1.0, 0.996,  0.9933, 0.9850, 0.9767, 0.9008, 0.6180]
  skip_block_list: [[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]]
  num_inference_steps: 30
  skip_final_inference_steps: 3
  cfg_star_rescale: true

second_pass:
  guidance_scale: [1]
  stg_scale: [1]
  rescaling_scale: [1]
  guidance_timesteps: [1.0]
  skip_block_list: [27]
  num_inference_steps: 30
  skip_initial_inference_steps: 17
  cfg_star_rescale: true
"""

BASE_YAML = """\
pipeline_type: base
checkpoint_path: "ltxv-2b-0.9.6-distilled-04-25.safetensors"
guidance_scale: 1
stg_scale: 0
rescaling_scale: 1
num_inference_steps: 8
stg_mode: "attention_values"
decode_timestep: 0.05
decode_noise_scale: 0.025
text_encoder_model_name_or_path: "PixArt-alpha/PixArt-XL-2-1024-MS"
precision: "bfloat16"
sampler: "from_checkpoint"
prompt_enhancement_words_threshold: 120
prompt_enhancer_image_caption_model_name_or_path: "MiaoshouAI/Florence-2-large-PromptGen-v2.0"
prompt_enhancer_llm_model_name_or_path: "unsloth/Llama-3.2-3B-Instruct"
stochastic_sampling: true"""

FILES = [("ltxv-13b-0.9.8-distilled", DISTILLED_YAML), ("ltxv-13b-0.9.8-dev-fp8", DEV_YAML),
         ("ltxv-2b-0.9.6-distilled", BASE_YAML)]


@pytest.mark.parametrize("name,text", FILES)
def test_official_yaml_file_loads_to_the_preset(tmp_path, name, text):
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    preset = load_pipeline_config(name)
    loaded = load_pipeline_config(str(p))
    assert loaded == preset
    assert list(loaded) == list(preset)  # same key order as the file


def test_file_wins_and_bad_files(tmp_path):
    p = tmp_path / "ltxv-2b-0.9.yaml"  # a preset's name, but a real file: the file is read
    p.write_text("pipeline_type: base\nguidance_scale: 5 # mine\n")
    assert load_pipeline_config(str(p)) == {"pipeline_type": "base", "guidance_scale": 5}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        load_pipeline_config(str(bad))
    with pytest.raises(ValueError, match="folder"):
        load_pipeline_config(str(tmp_path))


@pytest.mark.parametrize(("name", "layers", "distilled", "preset"), [
    ("ltxv-13b-0.9.8-distilled.safetensors", None, None, "ltxv-13b-0.9.8-distilled"),  # the checkpoint's own
    ("ltxv-13b-0.9.7-dev-fp8.safetensors", None, None, "ltxv-13b-0.9.7-dev-fp8"),
    ("LTXV-13B-0.9.8-distilled-Q4_K_M.gguf", None, None, "ltxv-13b-0.9.8-distilled"),  # QuantStack's names
    ("LTXV-13B-0.9.8-dev-Q5_K_M.gguf", None, None, "ltxv-13b-0.9.8-dev"),
    ("ltx-video-2b-v0.9-Q3_K_S.gguf", None, None, "ltxv-2b-0.9"),  # city96's
    ("ltxv-2b-0.9.6-distilled-04-25-Q8_0.gguf", None, None, "ltxv-2b-0.9.6-distilled"),
    ("my-0.9.8-model.safetensors", 48, True, "ltxv-13b-0.9.8-distilled"),  # the model says what the name does not
    ("my-0.9.8-model.safetensors", 48, False, "ltxv-13b-0.9.8-dev"),
])
def test_preset_for_model(name, layers, distilled, preset):
    from ltx_core import preset_for_model

    assert preset_for_model(name, layers, distilled)[0] == preset


def test_preset_for_model_refuses_a_name_that_says_nothing():
    from ltx_core import preset_for_model

    with pytest.raises(ValueError, match=r"cannot tell the recipe of 'model.gguf' from its name .*pick the preset"):
        preset_for_model("model.gguf", 28, False)
