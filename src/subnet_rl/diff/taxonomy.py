"""What a tensor is, from its name (and, for fp8 block scales, its neighbour): a layer, module and kind,
and a role: a trained parameter, an fp8 weight's block scale, or a stored buffer.

One place for the naming conventions the diff, the masks and the rank analysis share, so a tensor is
never a parameter in one table and a buffer in another.
"""

from __future__ import annotations

import re

from ..floats import FP8
from ..tensorfile import TensorEntry

_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
# Stored buffers (not parameters): the official script counts named_parameters only.
_BUFFER = re.compile(r"(?:^|\.)(?:inv_freq|position_ids|masked_bias|attn\.bias)$")
# Names of the block-scale tensor stored beside an fp8 weight: weight + suffix (DeepSeek-V3: _scale_inv).
_SCALE_SUFFIXES = ("_scale_inv", "_scale")
ROLES = ("param", "scale", "buffer")


def describe(name: str) -> dict:
    """Layer index, module and parameter kind parsed from a tensor name (e.g. layers.3.mlp.up_proj.weight)."""
    parts = name.split(".")
    layer = _LAYER.search(name)
    module = parts[-2] if len(parts) >= 2 else parts[-1]
    if "norm" in module or "ln" in module.split("_"):
        group = "norm"
    elif "embed" in module or module in ("lm_head", "wte", "wpe"):
        group = "embedding"
    elif any(k in module for k in ("q_proj", "k_proj", "v_proj", "o_proj", "attn", "query", "key", "value")):
        group = "attention"
    elif any(k in module for k in ("gate", "up_proj", "down_proj", "mlp", "fc", "expert")):
        group = "mlp"
    else:
        group = "other"
    return {"layer": int(layer.group(1)) if layer else None, "module": module, "group": group,
            "param": parts[-1]}


def scale_of(name: str, entries: dict[str, TensorEntry]) -> str | None:
    """The block-scale tensor stored beside an fp8 weight (DeepSeek-V3 style `weight_scale_inv`)."""
    for suffix in _SCALE_SUFFIXES:
        if name + suffix in entries:
            return name + suffix
    return None


def _is_block_scale(name: str, entries: dict[str, TensorEntry]) -> bool:
    """A scale tensor belongs to an fp8 weight beside it (not every tensor named *_scale does)."""
    return any(name.endswith(suffix) and (w := entries.get(name.removesuffix(suffix))) is not None
               and w.dtype in FP8 for suffix in _SCALE_SUFFIXES)


def role_of(name: str, *sides: dict[str, TensorEntry]) -> str:
    """`scale` when the tensor is an fp8 weight's block scale on any side, `buffer` for a stored buffer,
    else `param`: only parameters count towards sparsity, masks and ranks."""
    if any(_is_block_scale(name, entries) for entries in sides):
        return "scale"
    return "buffer" if _BUFFER.search(name) else "param"
