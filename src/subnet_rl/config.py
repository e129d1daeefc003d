"""Typed run specs built from the validated workflow config (one place for every training knob)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs; the Snakefile passes it whole as a param, so a change reruns it."""

    name: str
    algorithm: str
    lr: float
    steps: int
    seed: int
    dataset: str
    precision: str = "fp32"
    regime: str = ""
    subnetwork: bool = False
    batch_size: int = 64
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    max_new_tokens: int = 5
    # GRPO
    num_generations: int = 8
    temperature: float = 1.0
    kl_beta: float = 0.0
    # DPO
    dpo_beta: float = 0.1
    sft_weight: float = 1.0
    pairs: str = "on_policy"

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str) -> "RunSpec":
        """Run entry over the algorithm's defaults over the `training` defaults."""
        try:
            run = config["runs"][name]
        except KeyError:
            raise KeyError(f"no run named {name!r} under 'runs' in the config") from None
        merged = {**config.get("training", {}), **config.get(run["algorithm"], {}), **run}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known - {"algorithm"})
        if unknown:
            raise ValueError(f"runs.{name}: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(name=name, **{k: v for k, v in merged.items() if k in known and k != "name"})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class WarmupSpec:
    """SFT that turns the freshly built model into a partially competent start checkpoint."""

    dataset: str
    lr: float
    steps: int
    batch_size: int = 64
    warmup_steps: int = 0
    seed: int = 0
    weight_decay: float = 0.0

    def as_run(self) -> RunSpec:
        return RunSpec(name="warmup", algorithm="sft", lr=self.lr, steps=self.steps, seed=self.seed,
                       dataset=self.dataset, batch_size=self.batch_size, warmup_steps=self.warmup_steps,
                       weight_decay=self.weight_decay)


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def coerce_scientific_notation(node: Any) -> Any:
    """Turn strings like '1e-4' into floats, in place (YAML 1.1 reads a dot-less exponent as a string).

    Anything else that is not a number (e.g. 'abc') stays a string, so schema validation names it.
    """
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
            node[key] = float(value)
        else:
            coerce_scientific_notation(value)
    return node


def check_references(config: dict[str, Any]) -> None:
    """Cross-field checks a JSON schema cannot express; each error names the key and the fix."""
    datasets = set(config.get("datasets", {}))
    warmup = config.get("model", {}).get("warmup")
    if warmup and warmup["dataset"] not in datasets:
        raise ValueError(f"model.warmup.dataset: {warmup['dataset']!r} is not under 'datasets' "
                         f"(known: {sorted(datasets)})")
    for name, run in config.get("runs", {}).items():
        if run["dataset"] not in datasets:
            raise ValueError(f"runs.{name}.dataset: {run['dataset']!r} is not under 'datasets' "
                             f"(known: {sorted(datasets)})")
        RunSpec.from_config(config, name)


def sort_keys_in_place(node: Any) -> Any:
    """Order every mapping by key, in place.

    Snakemake compares a rule's params by their text, so reordering keys in the YAML (or a tool that
    rewrites it) would otherwise rerun every stage although no setting changed.
    """
    if isinstance(node, dict):
        items = sorted(node.items())
        node.clear()
        node.update(items)
        for value in node.values():
            sort_keys_in_place(value)
    elif isinstance(node, list):
        for value in node:
            sort_keys_in_place(value)
    return node
