"""Reading a LoRA file and matching it to a transformer: every tensor accounted for before anything is applied.

A LoRA is refused when it cannot be what the user meant (not a LoRA at all, a LoRA for another model, shapes made
for another width); a partial match is kept and reported (`Lora.summary`), never passed over in silence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from ..loader.errors import ModelFileError
from ..loader.safetensors_file import SafetensorsFile
from ..model.ops import Linear
from .keys import kohya_lookup, looks_like, official_name, split_role

# The metadata entry IC-LoRAs use for a reference encoded at 1/k of the target's size (any key ending in this).
DOWNSCALE_KEY = "reference_downscale_factor"
_SHOWN = 5  # problems listed by name in one message


@dataclass
class LayerPatch:
    """What one LoRA does to one target. The low-rank update of a layer is `scale * up @ down`."""

    target: str
    down: Tensor | None = None  # (rank, in)
    up: Tensor | None = None  # (out, rank)
    alpha: float | None = None
    diff: Tensor | None = None  # added to the weight (or to the target parameter)
    diff_b: Tensor | None = None  # added to the bias

    @property
    def rank(self) -> int:
        return 0 if self.down is None else int(self.down.shape[0])

    @property
    def scale(self) -> float:
        """alpha / rank where the file gives an alpha, else 1 (as ComfyUI reads such files)."""
        return 1.0 if self.alpha is None else self.alpha / self.rank


@dataclass
class Lora:
    """A LoRA file matched to a transformer: `patches` by official target name; `ignored` file keys whose targets
    the transformer does not have."""

    path: str
    patches: dict[str, LayerPatch]
    ignored: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def reference_downscale_factor(self) -> int:
        """How much smaller than the video an IC-LoRA's control input is encoded (1: the same size)."""
        for key, value in self.metadata.items():
            if key.endswith(DOWNSCALE_KEY):
                try:
                    factor = round(float(value))
                except ValueError:
                    raise ModelFileError(self.path, f"metadata {key}={value!r} is not a number") from None
                if factor < 1:
                    raise ModelFileError(self.path, f"metadata {key}={value!r}: must be at least 1")
                return factor
        return 1

    def summary(self) -> str:
        pairs = sum(p.down is not None for p in self.patches.values())
        whole = sum(p.down is None for p in self.patches.values())
        text = f"{self.name}: {pairs} low-rank layer(s)" + (f", {whole} whole-tensor patch(es)" if whole else "")
        if self.ignored:
            text += (f"; {len(self.ignored)} key(s) match nothing in this model and are ignored: "
                     + ", ".join(self.ignored[:_SHOWN]) + (" ..." if len(self.ignored) > _SHOWN else ""))
        return text


def check_lora_file(path) -> None:
    """What can be known from the file alone, before any model is loaded: ModelFileError unless it is a readable
    safetensors file holding LoRA tensors."""
    with SafetensorsFile(path) as f:
        _group(f)


def read_lora(path, transformer: nn.Module) -> Lora:
    """Read a LoRA file (safetensors only, tensors kept in the file's dtype on the CPU) and match it to
    `transformer`; ModelFileError naming the file and the keys when it cannot apply."""
    backend = getattr(transformer, "backend", "torch")
    if backend != "torch":
        raise ModelFileError(path, f"LoRAs are applied to the torch backend's weights, and this model runs on "
                                   f"{backend}: load the checkpoint with backend torch to use a LoRA")
    with SafetensorsFile(path) as f:
        groups, foreign = _group(f)
        modules = dict(transformer.named_modules())
        params = dict(transformer.named_parameters())
        kohya = kohya_lookup([*modules, *params])
        patches, ignored, problems = {}, list(foreign), []
        for name, roles in groups.items():
            target = official_name(name, kohya)
            if target not in modules and target not in params:
                ignored.extend(roles.values())
                continue
            patch = _patch(f, target, roles, problems)
            problems.extend(_shape_problems(patch, modules.get(target), params.get(target), roles))
            patches[target] = patch
        if problems:
            raise ModelFileError(path, _shape_message(problems, transformer))
        if not patches:
            raise ModelFileError(path, f"this LoRA matches nothing in this LTX-Video transformer: it looks like "
                                       f"{looks_like(groups)} (its targets include "
                                       f"{', '.join(sorted(groups)[:3])})")
        return Lora(str(path), patches, ignored, dict(f.metadata))


def _group(f: SafetensorsFile) -> tuple[dict[str, dict[str, str]], list[str]]:
    """{target name as written: {role: key}}, and the keys that are no part of a LoRA; ModelFileError for a file
    that is no LoRA, or one for LTX-2."""
    groups, foreign = {}, []
    for key in f.keys():
        split = split_role(key)
        if split is None:
            foreign.append(key)
            continue
        name, role = split
        groups.setdefault(name, {})[role] = key
    if not groups:
        raise ModelFileError(f.path, _not_a_lora(f.keys()))
    audio = sorted(name for name in groups if "audio" in name)
    if audio:  # LTX-2's video blocks share names and widths with the 13B's: refuse it even where keys match
        raise ModelFileError(f.path, f"this looks like an LTX-2 LoRA (it targets audio layers such as {audio[0]}); "
                                     "LTX-2 LoRAs do not apply to LTX-Video 0.9.x")
    return groups, foreign


def _not_a_lora(keys) -> str:
    keys = list(keys)
    if any(k.startswith("model.diffusion_model.transformer_blocks.") or k.startswith("transformer_blocks.")
           for k in keys):
        return ("this is not a LoRA but a full model (it holds whole weights such as "
                f"{sorted(keys)[0]!r}): load it with the checkpoint loader")
    sample = ", ".join(repr(k) for k in sorted(keys)[:3]) or "no tensors at all"
    return f"this is not a LoRA: none of its tensors is a LoRA pair, alpha or diff (it holds {sample})"


def _patch(f: SafetensorsFile, target: str, roles: dict[str, str], problems: list[str]) -> LayerPatch:
    patch = LayerPatch(target, **{r: f.tensor(k) for r, k in roles.items() if r in ("down", "up", "diff", "diff_b")})
    if "alpha" in roles:
        alpha = f.tensor(roles["alpha"])
        if alpha.numel() != 1:
            problems.append(f"{roles['alpha']}: an alpha must be one number, got shape {tuple(alpha.shape)}")
        else:
            patch.alpha = float(alpha)
    if (patch.down is None) != (patch.up is None):
        have, missing = ("down", "up") if patch.up is None else ("up", "down")
        problems.append(f"{roles[have]}: its {missing} half is missing")
    return patch


def _shape_problems(patch: LayerPatch, module, param, roles) -> list[str]:
    problems = []
    if patch.down is not None and patch.up is not None:
        if not isinstance(module, Linear):
            return [f"{roles['down']}: a low-rank pair, but {patch.target} is not a linear layer"]
        out_f, in_f = module.out_features, module.in_features  # a quantized layer's weight holds bytes
        d, u = tuple(patch.down.shape), tuple(patch.up.shape)
        if len(d) != 2 or len(u) != 2 or d[1] != in_f or u[0] != out_f or u[1] != d[0]:
            problems.append(f"{roles['down']}: down {d} / up {u} do not fit {patch.target} "
                            f"(weight {(out_f, in_f)}: down (rank, {in_f}), up ({out_f}, rank))")
    for role, want in (("diff", _weight_shape(module, param)), ("diff_b", _bias_shape(module))):
        t = getattr(patch, role)
        if t is not None and tuple(t.shape) != want:
            problems.append(f"{roles[role]}: shape {tuple(t.shape)}, but {patch.target} has "
                            f"{'nothing to patch' if want is None else want}")
    return problems


def _weight_shape(module, param) -> tuple | None:
    if isinstance(module, Linear):
        return (module.out_features, module.in_features)
    like = param if module is None else getattr(module, "weight", None)
    return None if like is None else tuple(like.shape)


def _bias_shape(module) -> tuple | None:
    bias = getattr(module, "bias", None)
    return None if bias is None else tuple(bias.shape)


def _shape_message(problems: list[str], transformer) -> str:
    width = getattr(getattr(transformer, "config", None), "inner_dim", None)
    hint = (f" This transformer is {width} wide (LTX-Video 2B: 2048, 13B: 4096): the LoRA was probably made for "
            "the other size." if width and any("do not fit" in p for p in problems) else "")
    listed = "; ".join(problems[:_SHOWN]) + (f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else "")
    return f"this LoRA does not fit this transformer: {listed}.{hint}"
