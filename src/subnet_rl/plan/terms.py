"""The memory plan's terms: bytes per GPU of each thing a training job holds, and the total.

The model's shape comes from `shapes` (the start checkpoint's config.json when it is on disk, the
embedded model's spec, or a `shape:` block in the config); without one the job's plan is "unknown until
fetched" and the launcher plans it at the job's start (`plan_job`, with the fetched config.json). A length
set to `auto` (max_prompt_length, max_length) is assumed (`ASSUMED_LENGTHS`, said in the plan's line) until
the launcher plans the job again with the lengths measured from its data.

Where each term comes from (P parameters; w bytes per weight: 4 for precision fp32, 2 for bf16;
a bytes per activation: 2 with bf16 weights or autocast bf16, else 4; W = GPUs per node x nodes):

- weights      P·w. Autocast bf16 adds P·2: autocast casts each weight to bf16 once per forward and
               autograd keeps the copy for the backward (one layer's worth with gradient checkpointing).
- gradients    P·w (`param.grad` has the parameter's dtype). They grow while the backward frees the
               activations, layer by layer, and are freed after the optimizer step (zero_grad sets them to
               None): see the total below.
- optimizer    the run's `optimizer`. adamw: exp_avg and exp_avg_sq, each `zeros_like(param)`: 2·P·w (fp32:
               4 + 4 + 8 = 16 bytes per parameter with weights and gradients; bf16 weights: 2 + 2 + 4 = 8;
               autocast keeps fp32 weights, so fp32 states); transformers' default optimizer is torch's fused
               AdamW (no per-parameter temporaries). sgd (torch's, no momentum): no state, 0; with
               weight_decay > 0 its step (torch's foreach path, the GPU default) adds the decay into a new copy
               of the decayed parameters' gradients, P_decayed·w, alive with the gradients at the step (on
               the CPU one tensor at a time: counted the same, an upper bound).
- masks        subnetwork runs only (`train_subnetwork`, `train_random_subnetwork`): one bool per entry,
               P bytes, plus a start copy (P_decayed·w) of the parameters the optimizer decays when
               weight_decay > 0 (the Trainer does not decay biases and norm weights); see
               `subnetwork.SubnetworkMask`.
- step_sparsity  runs with `step_sparsity` only: the recorder's bf16 copy of the weights, P·2 (of the local
               shard under FSDP2; a replica's under DDP, where each rank counts its own). It compares at the
               end of each step, after zero_grad has freed the gradients, chunk by chunk
               (`step_sparsity.CHUNK` entries), so its temporaries are never near a peak. An optional term:
               in `as_dict` (and the plan's table) only where a job has it, so a plan without it reads as
               before.
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

FSDP2 divides weights, gradients, optimizer states, masks, the step-sparsity copy and the reference model by W;
activations, logits and generation are per GPU whatever the sharding (batch_size is per device).

Total = weights + optimizer + masks + step_sparsity + reference + comm + vllm + runtime (held all along)
        + the largest of three moments (measured: the peak of a small batch is the end of the backward):
          the start of the backward: activations + logits (+ gradients when gradient_accumulation_steps > 1:
            the earlier micro-steps' gradients are still there);
          the end of the backward (and the optimizer step): gradients, + V·h·w with tied embeddings (the
            embedding's own dense gradient, added into the LM head's), + SGD's decayed-gradient copy;
          generation (no gradients yet: TRL samples at the start of each optimizer step).

Held against measured peaks of real CPU training runs in bench/plan_vs_measured.py (bench/README.md).
GB here are 2^30 bytes (nvidia-smi's MiB / 1024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..settings import AUTO_LENGTH, SHARDINGS, GroupSampling, RolloutSettings, Sampling
from .shapes import ModelShape

if TYPE_CHECKING:
    from ..config import RunSpec

GiB = 2**30
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
CUDA_RUNTIME_BYTES = GiB // 2
#: the lengths in tokens a job whose length is `auto` is planned with until its data is measured (the
#: workflow plans every job while Snakemake parses the Snakefile, before any data or tokenizer is at hand):
#: the defaults before `auto`, so the shipped configs keep their plans. The embedded addition task's
#: prompts (<= 8 tokens) and sequences (<= 12) are shorter, so its plan is an upper bound; a pretrained
#: model's chat prompts are often longer, so the launcher plans such a job again with the lengths measured
#: from its data when it starts (`launch.launch_of`, with resources.train.gpu_mem_gb) and refuses it there.
ASSUMED_LENGTHS = {"max_prompt_length": 32, "max_length": 64}


TERMS = ("weights", "gradients", "optimizer", "masks", "reference", "comm", "vllm", "runtime", "activations",
         "logits", "generation")
#: terms of optional observers, off by default: listed (in `as_dict`, the plan's table) only where non-zero.
OPTIONAL_TERMS = ("step_sparsity",)


@dataclass(frozen=True)
class Terms:
    """Bytes per GPU of each term (see the module docstring)."""

    weights: int = 0
    gradients: int = 0
    optimizer: int = 0
    masks: int = 0
    step_sparsity: int = 0
    reference: int = 0
    comm: int = 0
    vllm: int = 0
    runtime: int = 0
    activations: int = 0
    logits: int = 0
    generation: int = 0
    accumulation: int = 1    # gradient_accumulation_steps (not a term: it says when gradients meet activations)
    embedding_grad: int = 0  # tied embeddings: the embedding's dense gradient at the end of the backward
    step_copy: int = 0       # SGD with weight decay: the decayed gradients' copy during the optimizer step

    @property
    def static(self) -> int:
        """What is held for the whole job."""
        return (self.weights + self.optimizer + self.masks + self.step_sparsity + self.reference + self.comm
                + self.vllm + self.runtime)

    @property
    def backward_start(self) -> int:
        return self.activations + self.logits + (self.gradients if self.accumulation > 1 else 0)

    @property
    def backward_end(self) -> int:
        return self.gradients + self.embedding_grad + self.step_copy

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
        """Every term of `TERMS`, and each optional term the job has."""
        return {**{name: getattr(self, name) for name in TERMS},
                **{name: getattr(self, name) for name in OPTIONAL_TERMS if getattr(self, name)}}


def uses_reference(spec: RunSpec) -> bool:
    """Whether TRL holds a frozen reference model for this run (see `algorithms`' trainers)."""
    if spec.algorithm in ("dpo", "kto", "online_dpo"):
        return True
    return isinstance(spec.settings, GroupSampling) and spec.kl_beta > 0


def length_key(spec: RunSpec) -> str:
    """The length setting a job's plan reads: the prompts' for algorithms that sample their completions
    (max_new_tokens long), else prompt + completion."""
    return "max_prompt_length" if isinstance(spec.settings, Sampling) else "max_length"


def assumed_lengths(spec: RunSpec) -> dict[str, int]:
    """The length the plan assumes for `spec` ({} when it is set in tokens): `auto` is measured from the data
    when the job starts, and the plan made before (when the workflow starts) takes `ASSUMED_LENGTHS`."""
    key = length_key(spec)
    return {key: ASSUMED_LENGTHS[key]} if getattr(spec, key) == AUTO_LENGTH else {}


def planned_length(spec: RunSpec) -> int:
    """The length setting the plan reads, in tokens (assumed when `auto`)."""
    key = length_key(spec)
    return assumed_lengths(spec).get(key, getattr(spec, key))


def tokens(spec: RunSpec) -> tuple[int, int]:
    """(sequences, length) of one micro-batch's training forward on one GPU."""
    if isinstance(spec.settings, GroupSampling):  # GRPO, RLOO
        return spec.batch_size * spec.num_generations, planned_length(spec) + spec.max_new_tokens
    if isinstance(spec.settings, Sampling):  # Online DPO: two samples per prompt
        return 2 * spec.batch_size, planned_length(spec) + spec.max_new_tokens
    if spec.algorithm in ("dpo", "orpo", "simpo"):
        return 2 * spec.batch_size, planned_length(spec)
    return spec.batch_size, planned_length(spec)


def generation_batch(spec: RunSpec) -> int:
    """Completions sampled at once on one GPU (0: the algorithm does not sample)."""
    if isinstance(spec.settings, GroupSampling):
        return spec.batch_size * spec.num_generations * spec.gradient_accumulation_steps
    return 2 * spec.batch_size if isinstance(spec.settings, Sampling) else 0


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
    optimizer = 2 * P * w // shards if spec.optimizer == "adamw" else 0
    decayed = shape.decayed_parameters * w if spec.weight_decay > 0 else 0
    step_copy = decayed // shards if spec.optimizer == "sgd" else 0
    masks = 0
    if subnetwork:
        masks = (P + decayed) // shards
    step_sparsity = P * 2 // shards if spec.step_sparsity else 0
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
        cache = 2 * L * kv * (planned_length(spec) + spec.max_new_tokens) * completions * a
        generation = cache + 3 * completions * V * 4
        if isinstance(spec.settings, RolloutSettings) and spec.generation_engine == "vllm":
            if spec.vllm_mode == "colocate":
                share = spec.vllm_gpu_memory_utilization
                vllm = int(share * gpu_mem_gb * GiB) if gpu_mem_gb is not None else P * 2 + cache
            generation = 0
    return Terms(weights=weights, gradients=gradients, optimizer=optimizer, masks=masks, step_sparsity=step_sparsity,
                 reference=reference,
                 comm=comm, vllm=vllm, runtime=CUDA_RUNTIME_BYTES if device == "gpu" else 0,
                 activations=activations, logits=logits, generation=generation,
                 accumulation=spec.gradient_accumulation_steps,
                 embedding_grad=V * h * w if shape.tied_embeddings else 0, step_copy=step_copy)
