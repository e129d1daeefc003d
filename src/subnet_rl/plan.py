"""Memory plan of a training job: bytes per GPU of each thing training holds, before any job starts.

Arithmetic only (no torch import: the workflow plans every job while Snakemake parses the Snakefile).
The model's shape comes from the start checkpoint's config.json when it is on disk (a fetched or local
folder, a hub snapshot in the HF cache), from the config's `model.embedded` for the embedded model, else
from a `shape:` block beside the model in the config; without any of these the job's plan is "unknown
until fetched" and the launcher plans it at the job's start (`plan_job`, with the fetched config.json).

Where each term comes from (P parameters; w bytes per weight: 4 for precision fp32, 2 for bf16;
a bytes per activation: 2 with bf16 weights or autocast bf16, else 4; W = GPUs per node x nodes):

- weights      P·w. Autocast bf16 adds P·2: autocast casts each weight to bf16 once per forward and
               autograd keeps the copy for the backward (one layer's worth with gradient checkpointing).
- gradients    P·w (`param.grad` has the parameter's dtype). They grow while the backward frees the
               activations, layer by layer, and are freed after the optimizer step (zero_grad sets them to
               None): see the total below.
- optimizer    AdamW's exp_avg and exp_avg_sq, each `zeros_like(param)`: 2·P·w (fp32: 4 + 4 + 8 =
               16 bytes per parameter with weights and gradients; bf16 weights: 2 + 2 + 4 = 8; autocast
               keeps fp32 weights, so fp32 states). transformers' default optimizer is torch's fused AdamW
               (no per-parameter temporaries).
- masks        subnetwork runs only (`train_subnetwork`, `train_random_subnetwork`): one bool per entry,
               P bytes, plus a start copy (P_decayed·w) of the parameters AdamW decays when weight_decay > 0
               (the Trainer does not decay biases and norm weights); see `subnetwork.SubnetworkMask`.
- reference    a frozen copy of the start model, P·w: DPO, KTO and Online DPO always (TRL loads one unless
               PEFT or precompute_ref_log_probs), GRPO and RLOO when kl_beta > 0; ORPO, SimPO, SFT never.
- activations  tokens T = sequences x length per micro-batch (SFT, KTO: batch_size x max_length; DPO,
               ORPO, SimPO: chosen and rejected, 2 x batch_size x max_length; GRPO, RLOO: batch_size x
               num_generations completions of max_prompt_length + max_new_tokens; Online DPO: 2 x batch_size
               of the same). One decoder layer (HF Llama/Qwen2, SDPA, no dropout) keeps for its backward,
               per token: its input and the normalised input of each of its two RMSNorms (4h, in fp32:
               RMSNorm upcasts), the norms' outputs, the rotated queries, the attention output and its
               contiguous copy (5h), the rotated keys and values (2·kv_heads·head_dim) and the MLP's gate,
               up, activation and product (4i): 9h + 2·kv·d + 4i elements, checked against autograd's saved
               tensors (within 3%). Outside the layers: the final norm and the LM head's input, 4h. Plus
               the boolean 4-D attention mask, T·length bytes. On the CPU SDPA's math kernel keeps the
               attention probabilities, num_heads·length per token and layer (GPU kernels keep O(length)).
               Gradient checkpointing keeps one layer's input per layer (h per token and layer) and
               recomputes one layer's full set during the backward.
- logits       TRL 1.16's SFT, DPO, KTO, GRPO and RLOO score tokens with a fused, tiled LM head
               (trl/kernels/chunked_logprob.py) over the N = sequences x (length - 1) scored positions: a
               [min(N, 4096), 32768] tile in the compute dtype (32768 wide whatever the vocabulary: for
               small models often the largest term), and in its backward an fp32 gradient of the head's
               weight (V·h·4) and of its input (N·h·4); on the CPU (no Triton) its backward also holds
               7.25 fp32 temporaries of the tile's real width, min(V, 32768). ORPO, SimPO and Online DPO
               materialise the logits: 3·N·V·4 (the logits, their log-softmax, its gradient).
- generation   GRPO/RLOO sample a whole generation batch at once: batch_size x num_generations x
               gradient_accumulation_steps completions per GPU (TRL's steps_per_generation defaults to the
               accumulation steps); Online DPO 2 x batch_size. KV cache 2·layers·kv_heads·head_dim x
               (max_prompt_length + max_new_tokens) x completions x a, plus the sampler's fp32 logits of
               the last position (3 copies of completions x V x 4). The cache is gone before the training
               forward (see the total).
- comm         communication buffers. DDP with W > 1: the reducer's gradient buckets, P·w (torch DDP's
               default gradient_as_bucket_view=False, which accelerate keeps). FSDP2: the unsharded
               parameters of the root unit (embeddings, LM head, final norm; not resharded after the
               forward) and of two decoder layers (the one computing and the one prefetched), plus one
               layer's unsharded gradients before the reduce-scatter.
- vllm         `generation.engine: vllm` (GRPO, RLOO, Online DPO) replaces the generation term: colocated,
               vLLM keeps gpu_memory_utilization x gpu_mem_gb of every training GPU for the whole job
               (its weights and KV-cache pool; without gpu_mem_gb: a bf16 copy of the weights and the
               cache above); in server mode it runs on other GPUs and costs the training GPUs nothing.
- runtime      GPU jobs: 0.5 GiB for the CUDA context and cuBLAS workspaces (an estimate: not measured
               here, the machine has no GPU). CPU jobs: 0.

FSDP2 divides weights, gradients, optimizer states, masks and the reference model by W; activations,
logits and generation are per GPU whatever the sharding (batch_size is per device).

Total = weights + optimizer + masks + reference + comm + vllm + runtime (held all along)
        + the largest of three moments (measured: the peak of a small batch is the end of the backward):
          the start of the backward: activations + logits (+ gradients when gradient_accumulation_steps > 1:
            the earlier micro-steps' gradients are still there);
          the end of the backward (and the optimizer step): gradients, + V·h·w with tied embeddings (the
            embedding's own dense gradient, added into the LM head's);
          generation (no gradients yet: TRL samples at the start of each optimizer step).

Held against measured peaks of real CPU training runs in bench/plan_vs_measured.py (bench/README.md).
GB here are 2^30 bytes (nvidia-smi's MiB / 1024).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import RunSpec

GiB = 2**30
SHARDINGS = ("ddp", "fsdp2")
#: TRL's fused LM head tile: trl/kernels/chunked_logprob.py TOKEN_CHUNK_SIZE, trl/trainer/utils.py
#: _CHUNKED_LOGPROB_CHUNK_SIZE (the tile buffer is allocated this wide even for a smaller vocabulary).
HEAD_TILE_TOKENS = 4096
HEAD_TILE_VOCAB = 32768
#: tile-sized fp32 temporaries alive at once in the fused head's backward on a device without Triton
#: (trl/kernels/chunked_logprob.py `_backward_tile`: y, z, log_p, p, grad, (is_target - p), its product with
#: the incoming gradient, and the bool is_target at a quarter); measured on SmolLM2 (bench/README.md).
CPU_TILE_TEMPORARIES = 7.25
#: algorithms whose TRL trainer uses the fused LM head (the others materialise the logits).
FUSED_HEAD = frozenset({"sft", "dpo", "kto", "grpo", "rloo"})
#: algorithms that sample while training (a generation phase with a KV cache).
SAMPLING = frozenset({"grpo", "rloo", "online_dpo"})
CUDA_RUNTIME_BYTES = GiB // 2
#: the embedded model's tokenizer: models.SPECIAL_TOKENS (pad, eos, bos, unk) and the task's alphabet.
EMBEDDED_SPECIAL_TOKENS = 4
#: models.TinyModelSpec's defaults (a test keeps the two equal; models.py imports torch, this may not).
EMBEDDED_DEFAULTS = {"architecture": "qwen2", "hidden_size": 128, "intermediate_size": 256, "num_layers": 2,
                     "num_heads": 4, "num_kv_heads": 2, "max_positions": 32}


class PlanError(ValueError):
    """A training job whose memory plan exceeds resources.train.gpu_mem_gb."""


# -- model shape -------------------------------------------------------------------------------------
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
    from .tasks.addition import ALPHABET

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


# -- the plan ----------------------------------------------------------------------------------------
TERMS = ("weights", "gradients", "optimizer", "masks", "reference", "comm", "vllm", "runtime", "activations",
         "logits", "generation")


@dataclass(frozen=True)
class Terms:
    """Bytes per GPU of each term (see the module docstring)."""

    weights: int = 0
    gradients: int = 0
    optimizer: int = 0
    masks: int = 0
    reference: int = 0
    comm: int = 0
    vllm: int = 0
    runtime: int = 0
    activations: int = 0
    logits: int = 0
    generation: int = 0
    accumulation: int = 1    # gradient_accumulation_steps (not a term: it says when gradients meet activations)
    embedding_grad: int = 0  # tied embeddings: the embedding's dense gradient at the end of the backward

    @property
    def static(self) -> int:
        """What is held for the whole job."""
        return self.weights + self.optimizer + self.masks + self.reference + self.comm + self.vllm + self.runtime

    @property
    def backward_start(self) -> int:
        return self.activations + self.logits + (self.gradients if self.accumulation > 1 else 0)

    @property
    def backward_end(self) -> int:
        return self.gradients + self.embedding_grad

    @property
    def total(self) -> int:
        """The static terms and the largest moment: backward start, backward end, generation."""
        return self.static + max(self.backward_start, self.backward_end, self.generation)

    @property
    def peak_moment(self) -> str:
        """When the peak happens: "backward start", "backward end" or "generation"."""
        moments = {"backward start": self.backward_start, "backward end": self.backward_end,
                   "generation": self.generation}
        return max(moments, key=moments.__getitem__)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TERMS}


def uses_reference(spec: RunSpec) -> bool:
    """Whether TRL holds a frozen reference model for this run (see `algorithms`' trainers)."""
    if spec.algorithm in ("dpo", "kto", "online_dpo"):
        return True
    return spec.algorithm in ("grpo", "rloo") and spec.kl_beta > 0


def tokens(spec: RunSpec) -> tuple[int, int]:
    """(sequences, length) of one micro-batch's training forward on one GPU."""
    if spec.algorithm in ("grpo", "rloo"):
        return spec.batch_size * spec.num_generations, spec.max_prompt_length + spec.max_new_tokens
    if spec.algorithm == "online_dpo":
        return 2 * spec.batch_size, spec.max_prompt_length + spec.max_new_tokens
    if spec.algorithm in ("dpo", "orpo", "simpo"):
        return 2 * spec.batch_size, spec.max_length
    return spec.batch_size, spec.max_length


def generation_batch(spec: RunSpec) -> int:
    """Completions sampled at once on one GPU (0: the algorithm does not sample)."""
    if spec.algorithm in ("grpo", "rloo"):
        return spec.batch_size * spec.num_generations * spec.gradient_accumulation_steps
    return 2 * spec.batch_size if spec.algorithm == "online_dpo" else 0


def plan_terms(spec: RunSpec, shape: ModelShape, *, world: int = 1, sharding: str = "ddp", subnetwork: bool = False,
               device: str = "gpu", gpu_mem_gb: float | None = None) -> Terms:
    """Bytes per GPU of `spec` on `shape`, `world` GPUs in all, DDP or FSDP2, with a mask or not
    (`gpu_mem_gb`: the share colocated vLLM takes)."""
    if sharding not in SHARDINGS:
        raise ValueError(f"sharding {sharding!r}: plan one of {SHARDINGS}")
    P, h, L, V = shape.parameters, shape.hidden_size, shape.num_layers, shape.vocab_size
    w = 2 if spec.precision == "bf16" else 4
    a = 2 if spec.precision == "bf16" or spec.autocast == "bf16" else 4
    shards = world if sharding == "fsdp2" else 1
    fsdp = sharding == "fsdp2"

    autocast_copies = 0
    if spec.autocast == "bf16" and spec.precision != "bf16":
        autocast_copies = 2 * (shape.layer_parameters + shape.root_parameters if spec.gradient_checkpointing else P)
    weights = P * w // shards + autocast_copies
    gradients = P * w // shards
    optimizer = 2 * P * w // shards
    masks = 0
    if subnetwork:
        masks = (P + (shape.decayed_parameters * w if spec.weight_decay > 0 else 0)) // shards
    reference = P * w // shards if uses_reference(spec) else 0
    comm = 0
    if world > 1:
        comm = (shape.root_parameters + 3 * shape.layer_parameters) * w if fsdp else P * w

    sequences, length = tokens(spec)
    T = sequences * length
    kv = shape.num_kv_heads * shape.head_dim
    per_layer = T * (4 * h * 4 + (5 * h + 2 * kv + 4 * shape.intermediate_size) * a)
    if device == "cpu":  # SDPA's math kernel keeps the attention probabilities
        per_layer += T * shape.num_heads * length * 4
    kept = L * T * h * a + per_layer if spec.gradient_checkpointing else L * per_layer
    activations = kept + T * 4 * h * a + T * length

    scored = sequences * (length - 1)  # the head scores each position's next token
    if spec.algorithm in FUSED_HEAD:
        rows = min(scored, HEAD_TILE_TOKENS)
        logits = rows * HEAD_TILE_VOCAB * a + V * h * 4 + scored * h * 4
        if device == "cpu":  # without Triton the backward folds each tile with fp32 torch temporaries
            logits += int(CPU_TILE_TEMPORARIES * rows * min(V, HEAD_TILE_VOCAB) * 4)
    else:
        logits = 3 * scored * V * 4

    completions = generation_batch(spec)
    generation = vllm = 0
    if completions:
        cache = 2 * L * kv * (spec.max_prompt_length + spec.max_new_tokens) * completions * a
        generation = cache + 3 * completions * V * 4
        if getattr(spec, "generation_engine", "hf") == "vllm":
            if getattr(spec, "vllm_mode", "colocate") == "colocate":
                share = getattr(spec, "vllm_gpu_memory_utilization", 0.3)
                vllm = int(share * gpu_mem_gb * GiB) if gpu_mem_gb is not None else P * 2 + cache
            generation = 0
    return Terms(weights=weights, gradients=gradients, optimizer=optimizer, masks=masks, reference=reference,
                 comm=comm, vllm=vllm, runtime=CUDA_RUNTIME_BYTES if device == "gpu" else 0,
                 activations=activations, logits=logits, generation=generation,
                 accumulation=spec.gradient_accumulation_steps,
                 embedding_grad=V * h * w if shape.tied_embeddings else 0)


@dataclass(frozen=True)
class RunPlan:
    """The plan of one training job: both shardings, and the one it runs with."""

    run: str
    variant: str                     # full | subnet (also the random-mask controls) | warmup
    spec: RunSpec
    gpus: int                        # per node (0: the CPU)
    nodes: int
    sharding: str                    # as configured: auto | ddp | fsdp2
    gpu_mem_gb: float | None
    shape: ModelShape | None
    by_sharding: dict[str, Terms] = field(default_factory=dict)
    model: str = "start"

    @property
    def world(self) -> int:
        return max(1, self.gpus) * self.nodes

    @property
    def device(self) -> str:
        return "gpu" if self.gpus > 0 else "cpu"

    @property
    def known(self) -> bool:
        return self.shape is not None

    @property
    def chosen(self) -> str:
        """The sharding the job runs with (auto resolved by `choose_sharding`)."""
        if self.sharding != "auto":
            return self.sharding
        return choose_sharding(self, self.gpu_mem_gb) if self.known else "ddp"

    @property
    def terms(self) -> Terms | None:
        return self.by_sharding.get(self.chosen)

    @property
    def total(self) -> int | None:
        return None if self.terms is None else self.terms.total

    @property
    def fits(self) -> bool | None:
        if self.total is None or self.gpu_mem_gb is None:
            return None
        return self.total <= self.gpu_mem_gb * GiB


def choose_sharding(plan: RunPlan, gpu_mem_gb: float | None) -> str:
    """`auto`: FSDP2 when one DDP replica does not fit `gpu_mem_gb` (and there is more than one GPU to
    shard over), else DDP. Pure: reads the plan's DDP total."""
    if plan.world <= 1 or gpu_mem_gb is None or "ddp" not in plan.by_sharding:
        return "ddp"
    return "ddp" if plan.by_sharding["ddp"].total <= gpu_mem_gb * GiB else "fsdp2"


def plan_run(spec: RunSpec, shape: ModelShape | None, *, gpus: int = 0, nodes: int = 1, gpu_mem_gb: float | None = None,
             subnetwork: bool = False, variant: str | None = None, model: str | None = None) -> RunPlan:
    """Plan `spec` (both shardings) on `gpus` GPUs per node and `nodes` nodes."""
    world = max(1, gpus) * nodes
    device = "gpu" if gpus > 0 else "cpu"
    by_sharding = {} if shape is None else {
        s: plan_terms(spec, shape, world=world, sharding=s, subnetwork=subnetwork, device=device, gpu_mem_gb=gpu_mem_gb)
        for s in SHARDINGS}
    return RunPlan(run=spec.name, variant=variant or ("subnet" if subnetwork else "full"), spec=spec, gpus=gpus,
                   nodes=nodes, sharding=getattr(spec, "sharding", "auto"), gpu_mem_gb=gpu_mem_gb, shape=shape,
                   by_sharding=by_sharding, model=model or spec.model)


def plan_job(spec: RunSpec, start: str | os.PathLike, settings: Mapping[str, Any], mask: bool = False) -> RunPlan:
    """The launcher's plan of one job from its start checkpoint folder (config.json, safetensors headers)
    and `resources.train` as the workflow passes it (gpus, nodes, gpu_mem_gb). `mask`: a subnetwork job."""
    return plan_run(spec, shape_from_checkpoint(start), gpus=int(settings.get("gpus") or 0),
                    nodes=int(settings.get("nodes") or 1), gpu_mem_gb=settings.get("gpu_mem_gb"), subnetwork=mask)


def check_job(spec: RunSpec, start: str | os.PathLike, settings: Mapping[str, Any], mask: bool = False) -> RunPlan:
    """`plan_job`, refused with PlanError (naming what to change) when it exceeds gpu_mem_gb: the check of
    a job whose model was not on disk when the workflow started."""
    plan = plan_job(spec, start, settings, mask)
    check_plans([plan])
    return plan


def train_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """resources.train as the plan reads it: GPUs per node (0: CPU), nodes, gpu_mem_gb."""
    train = config.get("resources", {}).get("train", {})
    return {"gpus": int(train.get("gpu", 0)), "nodes": int(train.get("nodes", 1)),
            "gpu_mem_gb": train.get("gpu_mem_gb")}


def plan_config(config: Mapping[str, Any], root: str | os.PathLike = ".") -> list[RunPlan]:
    """Every training job of a validated config: the warmup, each run in full and, where `subnetwork`
    is set, its subnetwork run (the random-mask controls plan the same)."""
    from .config import RunSpec, WarmupSpec, start_models

    settings = train_settings(config)
    models = start_models(config)
    shapes: dict[str, ModelShape | None] = {}

    def shape_of(key: str) -> ModelShape | None:
        if key not in shapes:
            shapes[key] = model_shape(key, models[key], root)
        return shapes[key]

    common = dict(gpus=settings["gpus"], nodes=settings["nodes"], gpu_mem_gb=settings["gpu_mem_gb"])
    plans = []
    warmup = config.get("model", {}).get("warmup")
    if warmup and config.get("runs"):
        plans.append(plan_run(WarmupSpec(**warmup).as_run(), shape_of("start"), variant="warmup", **common))
    for name in sorted(config.get("runs", {})):
        spec = RunSpec.from_config(dict(config), name)
        plans.append(plan_run(spec, shape_of(spec.model), **common))
        if spec.subnetwork:
            plans.append(plan_run(spec, shape_of(spec.model), subnetwork=True, **common))
    return plans


# -- what to change ----------------------------------------------------------------------------------
def _replanned(plan: RunPlan, **changes) -> RunPlan:
    spec_changes = {k: v for k, v in changes.items() if k in {f.name for f in dataclasses.fields(plan.spec)}}
    spec = dataclasses.replace(plan.spec, **spec_changes)
    return plan_run(spec, plan.shape, gpus=changes.get("gpus", plan.gpus), nodes=changes.get("nodes", plan.nodes),
                    gpu_mem_gb=plan.gpu_mem_gb, subnetwork=plan.variant == "subnet", variant=plan.variant,
                    model=plan.model)


def _fits(plan: RunPlan, sharding: str | None = None) -> bool:
    terms = plan.by_sharding[sharding or plan.chosen]
    return terms.total <= (plan.gpu_mem_gb or 0) * GiB


def fixes(plan: RunPlan) -> list[str]:
    """Changes that each alone bring the plan within gpu_mem_gb (recomputed, not guessed)."""
    where = _key(plan)
    out = []
    if plan.chosen == "ddp" and plan.world > 1 and _fits(plan, "fsdp2"):
        out.append(f"sharding: fsdp2 (`{where}.sharding` or `training.sharding`; auto does this)")
    sharded = "fsdp2" if plan.sharding != "ddp" else None
    for gpus, nodes in _more_gpus(plan.gpus, plan.nodes):
        more = _replanned(plan, gpus=gpus, nodes=nodes)
        if _fits(more, sharded or "fsdp2"):
            out.append(f"more GPUs: resources.train.gpu: {gpus}" + (f", nodes: {nodes}" if nodes > 1 else "")
                       + f" ({gpus * nodes} GPUs, FSDP2: {_gb(more.by_sharding['fsdp2'].total)} GB per GPU"
                       + (", with sharding: fsdp2 or auto)" if plan.sharding == "ddp" else ")"))
            break
    warmup = plan.variant == "warmup"  # model.warmup has neither gradient checkpointing nor accumulation
    if not warmup and not plan.spec.gradient_checkpointing and _fits(_replanned(plan, gradient_checkpointing=True)):
        out.append(f"gradient_checkpointing: true (`{where}.gradient_checkpointing`)")
    batch, accumulation = plan.spec.batch_size, plan.spec.gradient_accumulation_steps
    sampling = plan.spec.algorithm in ("grpo", "rloo")
    for smaller in range(batch - 1, 0, -1):
        scaled = math.ceil(batch * accumulation / smaller)
        options = [accumulation] if warmup else [scaled, accumulation] if sampling else [scaled]
        found = next((a for a in dict.fromkeys(options)
                      if _fits(_replanned(plan, batch_size=smaller, gradient_accumulation_steps=a))), None)
        if found is None:
            continue
        if found != accumulation:
            note = f" (gradient_accumulation_steps: {found} keeps the effective batch)"
        elif warmup:
            note = " (a smaller effective batch: the warmup has no gradient accumulation)"
        elif sampling:
            note = (" (a smaller effective batch: TRL samples batch_size x num_generations x "
                    "gradient_accumulation_steps completions at once)")
        else:
            note = ""
        out.append(f"batch_size: {smaller}{note} (`{where}.batch_size`)")
        break
    terms = plan.terms
    if terms is not None and terms.generation > terms.activations + terms.logits:
        out.append("the generation cache (batch_size x num_generations x gradient_accumulation_steps completions of "
                   "max_prompt_length + max_new_tokens tokens): fewer of them, or shorter")
    return out


def _more_gpus(gpus: int, nodes: int) -> Iterable[tuple[int, int]]:
    """Bigger jobs to try: more GPUs on each node (up to 8), then more nodes of at least 8 (up to 64)."""
    for more in range(max(1, gpus) + 1, 9):
        yield more, nodes
    for more_nodes in range(nodes + 1, 65):
        yield max(8, gpus), more_nodes


def _key(plan: RunPlan) -> str:
    """The config entry of a job's settings."""
    return "model.warmup" if plan.variant == "warmup" else f"runs.{plan.run}"


def refusal(plan: RunPlan) -> str:
    """Why the job cannot run, and what to change."""
    terms = plan.terms
    assert terms is not None and plan.gpu_mem_gb is not None
    largest = _largest(terms, 4)
    options = fixes(plan) or [("none of sharding, more GPUs, gradient checkpointing or a smaller batch fits alone: "
                               "combine them, or use GPUs with more memory (precision: bf16 halves weights, "
                               "gradients and optimizer states, and changes what sparsity means)")]
    return (f"{_key(plan)} ({plan.variant} training): memory plan {_gb(terms.total)} GB per GPU > "
            f"resources.train.gpu_mem_gb {plan.gpu_mem_gb:g} ({plan.chosen}, {plan.world} GPU(s); largest: "
            + ", ".join(f"{k} {_gb(v)}" for v, k in largest) + "). Change one of: " + "; ".join(options)
            + ". `subnet-rl plan --configfile <file>` shows every term")


def check_plans(plans: Iterable[RunPlan]) -> None:
    """Raise PlanError naming every job whose plan exceeds its gpu_mem_gb, with what to change (jobs
    without gpu_mem_gb, or of a model whose shape is unknown, pass)."""
    too_big = [p for p in plans if p.fits is False]
    if too_big:
        raise PlanError("\n".join(refusal(p) for p in too_big))


# -- presentation ------------------------------------------------------------------------------------
def _largest(terms: Terms, n: int) -> list[tuple[int, str]]:
    """The n largest terms that are at least 1% of the total."""
    return sorted(((v, k) for k, v in terms.as_dict().items() if v and v >= terms.total / 100), reverse=True)[:n]


def _gb(n: int) -> str:
    value = n / GiB
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def plan_line(plan: RunPlan) -> str:
    """One short line per job (printed when the workflow starts)."""
    head = f"memory plan: {plan.run} ({plan.variant})"
    where = f"{plan.gpus} GPU(s) x {plan.nodes} node(s), {plan.chosen}" if plan.gpus else "CPU"
    if not plan.known:
        return (f"{head}: unknown until fetched (no config.json on disk, no shape block); "
                "planned when the job starts")
    terms = plan.terms
    assert terms is not None
    largest = _largest(terms, 2)
    verdict = "" if plan.fits is None else (f" of {plan.gpu_mem_gb:g}: fits" if plan.fits
                                            else f" of {plan.gpu_mem_gb:g}: does not fit")
    per = " per GPU" if plan.gpus else ""
    return (f"{head}: {where}, {_gb(terms.total)} GB{per}{verdict} (largest: "
            + ", ".join(f"{k} {_gb(v)}" for v, k in largest) + ")")


def format_table(plans: Iterable[RunPlan]) -> str:
    """A table per training job: every term in GB (2^30 bytes), the total and whether it fits."""
    header = ["run", "variant", "GPUs", "nodes", "sharding", *TERMS, "total", "fits"]
    rows = []
    for plan in plans:
        terms = plan.terms
        cells = [plan.run, plan.variant, str(plan.gpus), str(plan.nodes),
                 plan.chosen + (" (auto)" if plan.sharding == "auto" and plan.world > 1 else "")]
        if terms is None:
            cells += ["?"] * len(TERMS) + ["unknown until fetched", "-"]
        else:
            cells += [_gb(v) for v in terms.as_dict().values()] + [_gb(terms.total)]
            cells.append("-" if plan.fits is None else "yes" if plan.fits else "NO")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def describe_shapes(plans: Iterable[RunPlan]) -> list[str]:
    """Where each start model's shape came from (one line per model)."""
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.model not in seen:
            shape = plan.shape
            seen[plan.model] = ("unknown until fetched: no config.json on disk and no `shape:` block" if shape is None
                                else f"{shape.parameters:,} parameters, {shape.num_layers} layers, hidden "
                                     f"{shape.hidden_size}, vocab {shape.vocab_size} (from {shape.source})")
    return [f"{model}: {text}" for model, text in seen.items()]
