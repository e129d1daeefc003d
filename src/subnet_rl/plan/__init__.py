"""Memory plan of a training job: bytes per GPU of each thing training holds, before any job starts.

Arithmetic only (no torch import: the workflow plans every job while Snakemake parses the Snakefile).
`terms` holds the formulas and where each comes from; `shapes` where a model's shape comes from;
`jobs` the plan of each job of a config; `fixes` what to change when one does not fit; `report` how
plans are printed. Held against measured peaks of real CPU training runs in bench/plan_vs_measured.py.
"""

from .fixes import PlanError, check_job, check_plans, fixes, refusal
from .jobs import (
                     RunPlan,
                     choose_sharding,
                     plan_config,
                     plan_job,
                     plan_run,
                     train_settings,
)
from .report import describe_shapes, format_table, plan_line
from .shapes import (
                     EMBEDDED_DEFAULTS,
                     EMBEDDED_SPECIAL_TOKENS,
                     ModelShape,
                     embedded_shape,
                     model_shape,
                     safetensors_parameters,
                     shape_from_block,
                     shape_from_checkpoint,
                     shape_from_hf_config,
)
from .terms import (
                     ASSUMED_LENGTHS,
                     CPU_TILE_TEMPORARIES,
                     CUDA_RUNTIME_BYTES,
                     FUSED_HEAD,
                     HEAD_TILE_TOKENS,
                     HEAD_TILE_VOCAB,
                     OPTIONAL_TERMS,
                     TERMS,
                     GiB,
                     Terms,
                     assumed_lengths,
                     generation_batch,
                     plan_terms,
                     tokens,
                     uses_reference,
)

__all__ = ["ASSUMED_LENGTHS", "CPU_TILE_TEMPORARIES", "CUDA_RUNTIME_BYTES", "EMBEDDED_DEFAULTS",
           "EMBEDDED_SPECIAL_TOKENS", "FUSED_HEAD", "HEAD_TILE_TOKENS", "HEAD_TILE_VOCAB", "OPTIONAL_TERMS", "TERMS",
           "GiB", "ModelShape", "PlanError", "RunPlan", "Terms", "assumed_lengths", "check_job", "check_plans",
           "choose_sharding", "describe_shapes", "embedded_shape", "fixes", "format_table", "generation_batch",
           "model_shape", "plan_config", "plan_job", "plan_line", "plan_run", "plan_terms", "refusal",
           "safetensors_parameters", "shape_from_block", "shape_from_checkpoint", "shape_from_hf_config", "tokens",
           "train_settings", "uses_reference"]
