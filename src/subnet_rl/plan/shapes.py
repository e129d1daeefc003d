"""The model's shape for the memory plan: from a checkpoint's config.json (and its safetensors headers),
the config's `model.embedded`, or a `shape:` block beside the model in the config."""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the embedded model's tokenizer: models.SPECIAL_TOKENS (pad, eos, bos, unk) and the task's alphabet.
EMBEDDED_SPECIAL_TOKENS = 4
#: models.TinyModelSpec's defaults (a test keeps the two equal; models.py imports torch, this may not).
EMBEDDED_DEFAULTS = {"architecture": "qwen2", "hidden_size": 128, "intermediate_size": 256, "num_layers": 2,
                     "num_heads": 4, "num_kv_heads": 2, "max_positions": 32}


@dataclass(frozen=True)
class ModelShape:
    """What the formulas need of a decoder-only model."""

    hidden_size: int
    num_layers: int
    vocab_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool = False
    qkv_bias: bool = False
    parameters: int = 0          # 0: computed from the dimensions
    source: str = ""             # where the shape came from

    def __post_init__(self):
        if not self.parameters:
            object.__setattr__(self, "parameters", self.computed_parameters())

    @property
    def layer_parameters(self) -> int:
        """One decoder layer: q, k, v, o projections (+ q/k/v biases), gated MLP, two RMSNorms."""
        h, q, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.qkv_bias else 0)
        return attention + 3 * h * self.intermediate_size + 2 * h

    @property
    def root_parameters(self) -> int:
        """Outside the decoder layers: embeddings, LM head (untied), final norm (FSDP2's root unit)."""
        return max(0, self.parameters - self.num_layers * self.layer_parameters)

    @property
    def decayed_parameters(self) -> int:
        """Parameters AdamW decays: all but biases and norm weights (transformers' Trainer)."""
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        biases = (self.num_heads * self.head_dim + 2 * kv) if self.qkv_bias else 0
        return max(0, self.parameters - self.num_layers * (2 * h + biases) - h)

    def computed_parameters(self) -> int:
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)
        return embeddings + self.num_layers * self.layer_parameters + self.hidden_size


def shape_from_hf_config(cfg: Mapping[str, Any], source: str = "", parameters: int = 0) -> ModelShape:
    """A transformers config.json (Llama, Qwen2, Mistral and alike; a multimodal model's text_config)."""
    cfg = cfg.get("text_config") or cfg
    try:
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        return ModelShape(
            hidden_size=hidden, num_layers=int(cfg["num_hidden_layers"]), vocab_size=int(cfg["vocab_size"]),
            intermediate_size=int(cfg["intermediate_size"]), num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
            parameters=parameters, source=source)
    except KeyError as err:
        raise ValueError(f"{source or 'config.json'}: no {err.args[0]!r}; the memory plan needs hidden_size, "
                         "num_attention_heads, num_hidden_layers, vocab_size and intermediate_size") from None


def shape_from_block(block: Mapping[str, Any], source: str) -> ModelShape:
    """A config's `shape:` block (model.shape, models.<name>.shape)."""
    hidden = int(block["hidden_size"])
    heads = int(block.get("num_heads") or hidden // int(block["head_dim"]))
    return ModelShape(hidden_size=hidden, num_layers=int(block["num_layers"]), vocab_size=int(block["vocab_size"]),
                      intermediate_size=int(block["intermediate_size"]), num_heads=heads,
                      num_kv_heads=int(block["num_kv_heads"]), head_dim=int(block["head_dim"]),
                      tied_embeddings=bool(block.get("tied_embeddings", False)),
                      qkv_bias=bool(block.get("qkv_bias", False)), parameters=int(block.get("parameters", 0)),
                      source=source)


def embedded_shape(embedded: Mapping[str, Any]) -> ModelShape:
    """The embedded model `models.build_tiny_model` builds: tied embeddings, its character tokenizer."""
    from ..tasks.addition import ALPHABET

    spec = {**EMBEDDED_DEFAULTS, **embedded}
    hidden, heads = int(spec["hidden_size"]), int(spec["num_heads"])
    return ModelShape(hidden_size=hidden, num_layers=int(spec["num_layers"]),
                      vocab_size=EMBEDDED_SPECIAL_TOKENS + len(dict.fromkeys(ALPHABET)),
                      intermediate_size=int(spec["intermediate_size"]), num_heads=heads,
                      num_kv_heads=int(spec["num_kv_heads"]), head_dim=hidden // heads, tied_embeddings=True,
                      qkv_bias=spec["architecture"] == "qwen2", source="model.embedded")


def safetensors_parameters(folder: str | os.PathLike) -> int:
    """Entries stored in a folder's *.safetensors files, read from their headers only (0 when none)."""
    total = 0
    for file in sorted(Path(folder).glob("*.safetensors")):
        with open(file, "rb") as stream:
            (length,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(length))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def shape_from_checkpoint(folder: str | os.PathLike) -> ModelShape:
    """A checkpoint folder's shape: config.json, and the exact parameter count from its safetensors headers."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: the memory plan needs the model's shape")
    return shape_from_hf_config(json.loads(config_file.read_text()), source=str(config_file),
                                parameters=safetensors_parameters(folder))


def _hub_snapshot(model: Mapping[str, Any], root: str | os.PathLike = ".") -> Path | None:
    """The hub model's snapshot folder in the HF cache (the model's cache_dir, HF_HUB_CACHE or HF_HOME/hub;
    the workflow's default HF_HOME is results/.cache/huggingface), when it holds a config.json."""
    cache = model.get("cache_dir") or os.environ.get("HF_HUB_CACHE") or Path(
        os.environ.get("HF_HOME") or Path(root) / "results" / ".cache" / "huggingface") / "hub"
    repo = Path(cache) / f"models--{model['name'].replace('/', '--')}"
    revision = model.get("revision") or "main"
    ref = repo / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = repo / "snapshots" / commit
    return snapshot if (snapshot / "config.json").is_file() else None


def _fetched(folder: Path, model: Mapping[str, Any]) -> bool:
    """A fetched start checkpoint on disk that is this model's (its provenance names it)."""
    provenance = folder / "provenance.json"
    if not (folder / "config.json").is_file() or not provenance.is_file():
        return False
    try:
        return json.loads(provenance.read_text()).get("name") == model.get("name")
    except ValueError:
        return False


def model_shape(key: str, model: Mapping[str, Any], root: str | os.PathLike = ".") -> ModelShape | None:
    """The shape of start checkpoint `key` (the config's model is "start", others are named under
    `models`): the embedded spec, a config.json on disk, the config's `shape:` block, else None."""
    if model.get("source") == "embedded":
        return embedded_shape(model.get("embedded", {}))
    fetched = Path(root) / "results" / "checkpoints" / "base" / ("init" if "warmup" in model else key)
    candidates = [fetched] if _fetched(fetched, model) else []
    if model.get("source") == "local":
        candidates.append(Path(model["name"]))
    elif model.get("source") == "hub":
        snapshot = _hub_snapshot(model, root)
        candidates += [snapshot] if snapshot else []
    for folder in candidates:
        if (folder / "config.json").is_file():
            return shape_from_checkpoint(folder)
    if model.get("shape"):
        where = "model.shape" if key == "start" else f"models.{key}.shape"
        return shape_from_block(model["shape"], where)
    return None
