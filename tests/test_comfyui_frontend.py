"""The UI workflows in ComfyUI's real frontend: headless Chromium (driven by Playwright) against a real ComfyUI server
with this pack and empty model folders. See tests/README_integration.md for how to run it.

For each UI workflow (loaded as a user's drag-and-drop loads it, `app.loadGraphData`):
- the missing-models dialog opens and lists every file of the workflow's `models` (folder / name) with its download
  URL (shown on hover);
- it opens at the zoom and offset it was saved with, readable (at least MIN_SCALE, above the zoom where the frontend
  draws widgets as blank boxes), every node on screen from the top and within two screen widths, no node smaller
  than its widgets need, no title cut off;
- its note is on screen and names the first model file; its groups are models / prompt and media / sampling /
  output, and every other node lies inside one;
- the input files its Load Image / Load Video nodes name are in the server's input folder on a fresh start (ComfyUI's
  example.png; the pack copies its example media there).
The Templates browser lists the pack's workflows with a thumbnail each. Screenshots of every workflow (with and
without the dialog) and of the Templates browser go to $LTXV_FRONTEND_SCREENSHOTS, else to pytest's temporary
directory; the path is printed (`-s` shows it).
"""
import json
import os
import shutil
import sys
from pathlib import Path

import comfyui_support as cs
import pytest

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH not set: see tests/README_integration.md"),
    pytest.mark.skipif(not CHROMIUM, reason="no chromium (apt-get install chromium, or set CHROMIUM_PATH)"),
]
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")

WORKFLOW_DIR = cs.REPO / "workflows"
WORKFLOWS = {p.stem: json.loads(p.read_text()) for p in sorted(WORKFLOW_DIR.glob("*.json"))}
VIEWPORT = {"width": 1920, "height": 1080}
# Below about 0.6 the frontend draws nodes without their widget text; 0.75 keeps 14 px labels at 10 px or more.
MIN_SCALE = 0.75
GROUPS = ["Models", "Prompt and media", "Sampling", "Output"]
NOTES = ("Note", "MarkdownNote")
MODEL_FOLDERS = ("checkpoints", "text_encoders", "latent_upscale_models", "loras", "diffusion_models", "vae")
LOAD_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    where = os.environ.get("LTXV_FRONTEND_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("frontend_screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nfrontend screenshots: {path}")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """ComfyUI with this pack, every model folder empty, and a fresh input folder holding ComfyUI's example.png."""
    comfy = Path(COMFYUI_PATH).expanduser().resolve()
    work = tmp_path_factory.mktemp("comfyui_frontend")
    for folder in MODEL_FOLDERS:
        (work / "models" / folder).mkdir(parents=True)
    link = cs.link_pack(work / "custom_nodes")
    yaml = cs.write_extra_model_paths(work / "extra_model_paths.yaml", work / "models", work / "custom_nodes")
    srv = cs.ComfyServer(comfy, os.environ.get("COMFYUI_PYTHON") or sys.executable, work, yaml)
    example = comfy / "input" / "example.png"  # what a fresh ComfyUI's input folder holds
    srv.input_dir.mkdir(parents=True, exist_ok=True)
    if example.is_file():
        shutil.copyfile(example, srv.input_dir / "example.png")
    else:
        (srv.input_dir / "example.png").write_bytes(cs.png_bytes(768, 512, 0))
    try:
        srv.start(cs.START_TIMEOUT)
        # no first-run template browser over the canvas, no minimap over its corner: the screenshots show the graph
        srv.post_json("/settings", {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False})
        yield srv
    finally:
        srv.stop()
        if link.is_symlink():
            link.unlink()


@pytest.fixture(scope="module")
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport=VIEWPORT)
        pg.goto(server.url("/"))
        pg.wait_for_function("window.app && app.graph && app.canvas && app.extensionManager",
                             timeout=LOAD_TIMEOUT_MS)
        pg.wait_for_timeout(2000)
        yield pg
        browser.close()


def _read_missing_models_dialog(page, count):
    """The missing-models dialog's entries: (text, the URL it shows on hover: the title of the file name and of the
    Download button). The frontend only downloads .safetensors/.sft itself; for other files (a .gguf) the entry
    says so and still shows the URL."""
    listbox = page.locator(".comfy-missing-models")
    listbox.wait_for(state="visible", timeout=20_000)
    entries = listbox.locator("li")
    assert entries.count() == count, f"the dialog lists {entries.count()} files, the workflow {count}"
    out = []
    for i in range(entries.count()):
        entry = entries.nth(i)
        url = entry.locator("span[title]").first.get_attribute("title")
        button = entry.get_by_role("button", name="Download").get_attribute("title")
        assert url == button, f"entry {i}: {url} != {button}"
        out.append((entry.inner_text(), url))
    return out


def _close_dialogs(page):
    for _ in range(3):
        if not page.locator(".p-dialog").count():
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


GEOMETRY = """() => {
  const c = app.canvas, ds = c.ds, s = ds.scale, rect = c.canvas.getBoundingClientRect();
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  c.ctx.font = LiteGraph.NODE_TEXT_SIZE + "px " + LiteGraph.NODE_FONT;
  const screen = (x, y) => [(x + ds.offset[0]) * s, (y + ds.offset[1]) * s];
  const nodes = app.graph.nodes.map(n => {
    const [l, t] = screen(n.pos[0], n.pos[1] - th), [r, b] = screen(n.pos[0] + n.size[0], n.pos[1] + n.size[1]);
    const need = n.computeSize();
    return {id: n.id, type: n.type, title: n.getTitle(), pos: Array.from(n.pos), size: Array.from(n.size),
            need: Array.from(need), screen: [l, t, r, b], titleWidth: c.ctx.measureText(n.getTitle()).width,
            text: n.widgets && n.widgets[0] && n.widgets[0].element ? n.widgets[0].element.innerText : null,
            shown: n.widgets && n.widgets[0] && n.widgets[0].element
              ? n.widgets[0].element.getBoundingClientRect().toJSON() : null};
  });
  const groups = (app.graph.groups || app.graph._groups).map(g => ({title: g.title, bounding: Array.from(g._bounding || g.bounding)}));
  return {scale: s, lowQuality: !!c.low_quality, canvas: [rect.width, rect.height], nodes, groups};
}"""


def _inside(pos, bounding):
    x, y, w, h = bounding
    return x <= pos[0] <= x + w and y <= pos[1] <= y + h


def _check_layout(name, g):
    width, height = g["canvas"]
    assert g["scale"] >= MIN_SCALE and not g["lowQuality"], f"{name}: opens at zoom {g['scale']:.2f}"
    for n in g["nodes"]:
        left, top, right, bottom = n["screen"]
        where = f"{name}: node {n['id']} {n['title']!r} at screen {[round(v) for v in n['screen']]}"
        assert left >= 0 and top >= 0 and bottom <= height, f"{where} is not on the first screen"
        assert right <= 2 * width, f"{where} lies past two screen widths"
        # a video preview asks for more than its current size whatever that is; it sizes itself to the video
        assert n["type"] == "LoadVideo" or (n["need"][0] <= n["size"][0] + 1 and n["need"][1] <= n["size"][1] + 1), \
            f"{where}: size {n['size']} is smaller than its widgets need {n['need']}"
        # title text + the collapse dot on the left and a margin
        assert n["titleWidth"] + 40 <= n["size"][0], f"{where}: the title is cut ({n['size'][0]} px wide)"
    assert [gr["title"] for gr in g["groups"]] == GROUPS, f"{name}: groups {[gr['title'] for gr in g['groups']]}"
    for n in g["nodes"]:
        if n["type"] not in NOTES:
            homes = [gr["title"] for gr in g["groups"] if _inside(n["pos"], gr["bounding"])
                     and _inside([n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1]], gr["bounding"])]
            assert len(homes) == 1, f"{name}: node {n['id']} {n['title']!r} lies in groups {homes}"


def _check_note(name, g, models):
    notes = [n for n in g["nodes"] if n["type"] in NOTES]
    assert len(notes) == 1, f"{name}: {len(notes)} notes"
    note = notes[0]
    assert note["text"] and models[0]["name"] in note["text"], f"{name}: the note's text on screen: {note['text']!r}"
    box = note["shown"]
    assert box["width"] > 200 and box["left"] >= 0 and box["top"] >= 0 and box["right"] <= VIEWPORT["width"] and \
        box["bottom"] <= VIEWPORT["height"], f"{name}: the note is not on the first screen: {box}"


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_opens_readable_with_its_note_and_downloads(page, server, shots, name):
    wf = WORKFLOWS[name]
    models = wf["models"]
    _close_dialogs(page)
    page.evaluate("(wf) => app.loadGraphData(wf)", wf)
    entries = _read_missing_models_dialog(page, len(models))
    page.screenshot(path=str(shots / f"{name}-missing-models.png"))
    for m in models:
        assert (f"{m['directory']} / {m['name']}", m["url"]) in [(t.split("\n")[0].strip(), u) for t, u in entries], \
            f"{name}: {m['directory']} / {m['name']} with {m['url']} not in the dialog: {entries}"
    _close_dialogs(page)
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / f"{name}.png"))
    g = page.evaluate(GEOMETRY)
    (shots / f"{name}.geometry.json").write_text(json.dumps(g, indent=1))
    _check_layout(name, g)
    _check_note(name, g, models)
    for n in wf["nodes"]:
        if n["type"] in ("LoadImage", "LoadVideo"):
            assert (server.input_dir / n["widgets_values"][0]).is_file(), \
                f"{name}: {n['widgets_values'][0]} is not in a fresh input folder"


def test_templates_browser_shows_thumbnails(page, server, shots):
    module = cs.PACK_DIR_NAME
    listed = server.get_json("/workflow_templates").get(module)
    assert sorted(listed or []) == sorted(WORKFLOWS), f"/workflow_templates lists {listed}"
    for name in WORKFLOWS:
        jpg = server.get(f"/api/workflow_templates/{module}/{name}.jpg")
        assert jpg[:3] == b"\xff\xd8\xff", f"{name}.jpg is not a JPEG"
    _close_dialogs(page)
    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text(module, exact=True).first.click()
    cards = page.locator("[data-testid^='template-workflow-']")
    cards.first.wait_for(state="visible", timeout=20_000)
    assert cards.count() == len(WORKFLOWS), f"{cards.count()} cards for {len(WORKFLOWS)} workflows"
    missing = []
    for name in WORKFLOWS:  # a card shows its thumbnail only while in view
        card = page.locator(f"[data-testid='template-workflow-{name}']")
        card.scroll_into_view_if_needed()
        try:
            # the card shows its image (fetched from /api/workflow_templates/<pack>/<name>.jpg, as a blob URL)
            page.wait_for_function("(sel) => Array.from(document.querySelectorAll(sel + ' img'))"
                                   ".some(i => i.complete && i.naturalWidth > 0)",
                                   arg=f"[data-testid='template-workflow-{name}']", timeout=10_000)
        except playwright.TimeoutError:
            missing.append(name)
    cards.first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "templates-browser.png"))
    shown = page.evaluate("() => Array.from(document.querySelectorAll(\"[data-testid^='template-workflow-'] img\"))"
                          ".map(i => [i.src, i.complete && i.naturalWidth])")
    assert not missing, f"no thumbnail shown for {missing}; images: {shown}"
    _close_dialogs(page)
