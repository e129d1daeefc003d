"""A training run's spec: who it is (name, algorithm, data, start model) and its typed settings.

A run's settings come from three places, each over the one before: the `training` section (defaults for
every run), its algorithm's section (`grpo`, `dpo`, ...) and the run entry. They split into the shared
`TrainingSpec` and the algorithm's own settings class (`settings`, named by the algorithm registry).

The `training` section may hold any algorithm's setting as a default (e.g. `max_new_tokens` or
`temperature`, the online algorithms', or `dpo_beta`): a run takes from it the shared settings and those
of its own algorithm, so such a default reaches the runs of the algorithms that have it and no others.
An algorithm's section and a run entry may set only the shared settings and that algorithm's own: a key
of another algorithm there is an error naming the run (or section), the key and the known keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..algorithms import ALGORITHMS, get_algorithm
from ..settings import (
    GENERATION_KEYS,
    RUN_OWN,
    AlgorithmSettings,
    RolloutSettings,
    TrainingSpec,
    field_names,
    generation_settings,
)
from ..tasks import default_reward

#: the name of the config's `model` among the start checkpoints (others are named under `models`).
DEFAULT_MODEL = "start"
#: the sections of a RunSpec that are no settings.
SECTIONS = ("training", "settings")


@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs; the Snakefile passes it whole (`as_dict`) as a param, so a change reruns it.

    Its settings read flat, as `spec.lr` or `spec.kl_beta`: the shared ones from `training`, the
    algorithm's own from `settings`; another algorithm's setting is an AttributeError naming it.
    """

    name: str
    algorithm: str
    dataset: str
    training: TrainingSpec
    settings: AlgorithmSettings
    regime: str = ""
    subnetwork: bool = False
    # Resolved from the run's datasets (not set in a run entry)
    task: str = "addition"
    reward: str | None = "partial"
    eval_dataset: str = ""
    model: str = DEFAULT_MODEL

    def __post_init__(self):
        expected = get_algorithm(self.algorithm).settings
        if type(self.settings) is not expected:
            raise TypeError(f"run {self.name}: {self.algorithm} takes {expected.__name__}, "
                            f"not {type(self.settings).__name__}")

    def __getattr__(self, key: str) -> Any:
        # Only reached when `key` is no field of the spec itself: look in its two settings sections.
        if key.startswith("__") or key in SECTIONS:
            raise AttributeError(key)
        for section in (object.__getattribute__(self, name) for name in SECTIONS):
            if key in section.__dataclass_fields__:
                return getattr(section, key)
        raise AttributeError(f"run {self.name}: {self.algorithm} has no setting {key!r} "
                             f"(its settings: {sorted(settable(self.algorithm))})")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunSpec:
        """From a flat dict (`as_dict`, a test's keywords): identity fields, shared and the algorithm's own
        settings; any other key is an error naming it and the known keys."""
        settings_class = get_algorithm(values["algorithm"]).settings
        identity, training, own = identity_fields(), field_names(TrainingSpec), field_names(settings_class)
        _refuse_unknown(f"run {values.get('name')!r}", set(values), {*identity, *training, *own})
        return cls(training=TrainingSpec(**{k: v for k, v in values.items() if k in training}),
                   settings=settings_class(**{k: v for k, v in values.items() if k in own}),
                   **{k: v for k, v in values.items() if k in identity})

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str) -> RunSpec:
        """Run entry over the algorithm's defaults over the `training` defaults (see the module docstring)."""
        try:
            run = config["runs"][name]
        except KeyError:
            raise KeyError(f"no run named {name!r} under 'runs' in the config") from None
        algorithm = run["algorithm"]
        known = settable(algorithm) - set(GENERATION_KEYS.values())  # those come from `generation`
        _refuse_unknown("training", set(config.get("training", {})), every_setting() - set(RUN_OWN))
        section = config.get(algorithm) or {}
        _refuse_unknown(algorithm, set(section), known - set(RUN_OWN))
        _refuse_unknown(f"runs.{name}", set(run), known | set(RUN_KEYS))
        defaults = {k: v for k, v in config.get("training", {}).items() if k in known}
        merged = {**defaults, **section, **run}
        if issubclass(get_algorithm(algorithm).settings, RolloutSettings):
            merged.update(generation_settings(config.get("generation") or {}))
        dataset = config["datasets"][run["dataset"]]
        merged.update(name=name, task=dataset_task(dataset), reward=dataset_reward(dataset))
        merged.setdefault("eval_dataset", run["dataset"])
        return cls.from_dict(merged)

    def as_dict(self) -> dict[str, Any]:
        """Flat: who the run is, its shared settings and its algorithm's own (what tables and `from_dict` read)."""
        identity = {name: getattr(self, name) for name in identity_fields()}
        return {**identity, **dataclasses.asdict(self.training), **dataclasses.asdict(self.settings)}

    def replaced(self, **changes: Any) -> RunSpec:
        """The same run with some settings (shared or its algorithm's own) changed."""
        return RunSpec.from_dict({**self.as_dict(), **changes})


#: what a run entry sets beside its settings (task and reward come from its dataset).
RUN_KEYS = ("algorithm", "dataset", "eval_dataset", "model", "regime", "subnetwork")


def identity_fields() -> tuple[str, ...]:
    """RunSpec's own fields: who the run is, not how it trains."""
    return tuple(name for name in field_names(RunSpec) if name not in SECTIONS)


def settable(algorithm: str) -> set[str]:
    """The settings a run of `algorithm` has: the shared ones and its own."""
    return {*field_names(TrainingSpec), *field_names(get_algorithm(algorithm).settings)}


def every_setting() -> set[str]:
    """The settings any run has (the keys the `training` section may hold, and lr/steps/seed)."""
    return set().union(*(settable(name) for name in ALGORITHMS)) - set(GENERATION_KEYS.values())


def _refuse_unknown(where: str, keys: set[str], known: set[str]) -> None:
    unknown = sorted(keys - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")


def warmup_run(section: Mapping[str, Any]) -> RunSpec:
    """The SFT run of `model.warmup` (its dataset and shared training settings; seed 0 unless given), which
    turns the freshly built model into a partially competent start checkpoint."""
    settings = {k: v for k, v in section.items() if k != "dataset"}
    return RunSpec.from_dict({"name": "warmup", "algorithm": "sft", "dataset": section["dataset"],
                              "eval_dataset": section["dataset"], **settings})


def dataset_task(dataset: dict[str, Any]) -> str:
    """A dataset's task (synthetic data is the addition task)."""
    return dataset.get("task", "addition")


def dataset_reward(dataset: dict[str, Any]) -> str | None:
    return dataset.get("reward") or default_reward(dataset_task(dataset))


def start_models(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every start checkpoint a run may name: the config's `model` (as "start") and those under `models`."""
    return {DEFAULT_MODEL: config.get("model", {}), **config.get("models", {})}
