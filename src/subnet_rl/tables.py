"""The study's final tables (Markdown for people, CSV for tools), built from the stage outputs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from .atomic import write_text
from .diff import sparsity
from .learning_signal import learning_signal, warning
from .outcomes import TARGET_COLUMNS, outcome
from .stage_outputs import read_diff, read_json, read_parquet
from .uncertainty import binomial_standard_error

RUN_COLUMNS = ["algorithm", "regime", "lr", "steps", "precision", "seed"]
#: accuracy keys are (dataset, variant, checkpoint name), as the evaluation stage's paths are.
AccuracyKey = tuple[str, str, str]


def _pct(x: float) -> float:
    return 100.0 * x


def _share(clipped: dict[AccuracyKey, float] | None, key: AccuracyKey) -> float:
    """% of a checkpoint's completions clipped at max_new_tokens; NaN when the caller has no counts."""
    return _pct(clipped[key]) if clipped is not None else math.nan


def _se(accuracy: dict[AccuracyKey, float], examples: dict[AccuracyKey, int] | None, key: AccuracyKey) -> float:
    """The binomial standard error (points) of a checkpoint's accuracy on its scored examples; NaN when the
    caller has no counts."""
    return _pct(binomial_standard_error(accuracy[key], examples[key])) if examples is not None else math.nan


def _scored(accuracy: dict[AccuracyKey, float], examples: dict[AccuracyKey, int] | None, label: str,
            key: AccuracyKey) -> dict[str, float]:
    """`accuracy_<label>` (%) and, beside it, `accuracy_<label>_se` (points)."""
    return {f"accuracy_{label}": _pct(accuracy[key]), f"accuracy_{label}_se": _se(accuracy, examples, key)}


def _before_after(accuracy: dict[AccuracyKey, float], clipped: dict[AccuracyKey, float] | None,
                  before: AccuracyKey, after: AccuracyKey,
                  examples: dict[AccuracyKey, int] | None = None) -> dict[str, float]:
    return {**_scored(accuracy, examples, "before", before), **_scored(accuracy, examples, "after", after),
            "clipped_before": _share(clipped, before), "clipped_after": _share(clipped, after)}


def _recorded(record: dict) -> dict:
    """From a run's training.json: its learning signal, and whether it was deterministic (bit-exact)."""
    return {**learning_signal(record.get("log_history", [])),
            "deterministic": record.get("environment", {}).get("deterministic")}


def sparsity_table(runs: dict[str, dict], run_diffs: dict[str, pd.DataFrame], accuracy: dict[AccuracyKey, float],
                   records: dict[str, dict], warmup: dict | None = None,
                   warmup_diff: pd.DataFrame | None = None, clipped: dict[AccuracyKey, float] | None = None,
                   max_clipped_share: float | None = None,
                   examples: dict[AccuracyKey, int] | None = None,
                   target: dict[AccuracyKey, float] | None = None) -> pd.DataFrame:
    """One row per run (and SFT-from-init): accuracy before/after, each with its binomial standard error in
    points (`accuracy_*_se`, from the examples scored, `examples`; NaN without), the % of completions clipped
    at max_new_tokens in each evaluation (`clipped`, keyed as `accuracy`), the learning signal of its trainer
    log, whether it was deterministic, and sparsity (%) at each criterion; `warning` says when the sparsity
    means nothing was learned, or when a clipped share passes `max_clipped_share`.

    A run trained on off-policy pairs also gets its accuracy on the answer form those pairs teach
    (`target_accuracy_*`, from `target`: each evaluation's share of completions right in that form; NaN for
    other runs), and every run its `outcome` (`outcomes.outcome`: learned, learned another target, lost
    accuracy, or no change beyond noise), which the comparisons quote for each arm."""
    rows = []
    if warmup is not None and warmup_diff is not None:
        ds = warmup["dataset"]
        rows.append({"run": "sft-from-init", "algorithm": "sft", "regime": "warmup", "lr": warmup["lr"],
                     "steps": warmup["steps"], "precision": warmup["precision"], "seed": warmup["seed"],
                     **_before_after(accuracy, clipped, (ds, "base", "init"), (ds, "base", "start"), examples),
                     **_recorded(records.get("sft-from-init", {})),
                     **{f"sparsity {k}": _pct(v) for k, v in sparsity(warmup_diff).items()}})
    for name in sorted(runs, key=lambda r: (runs[r]["regime"], runs[r]["algorithm"], r)):
        spec = runs[name]
        ds = spec["eval_dataset"]
        before, after = (ds, "base", spec["model"]), (ds, "full", name)
        rows.append({"run": name, **{c: spec[c] for c in RUN_COLUMNS},
                     **_before_after(accuracy, clipped, before, after, examples),
                     **_target_form(spec, target, examples, before, after),
                     **_recorded(records.get(name, {})),
                     **{f"sparsity {k}": _pct(v) for k, v in sparsity(run_diffs[name]).items()}})
    table = pd.DataFrame(rows)
    if not table.empty:
        outcomes = [_outcome(r) for r in table.to_dict("records")]
        table.insert(table.columns.get_loc(TARGET_COLUMNS[-1]) + 1 if TARGET_COLUMNS[-1] in table else
                     table.columns.get_loc("clipped_after") + 1, "outcome", outcomes)
        table["warning"] = [warning(row, _untouched(row) / 100.0,
                                    {"before": row["clipped_before"] / 100.0, "after": row["clipped_after"] / 100.0},
                                    max_clipped_share) for row in table.to_dict("records")]
    return table


def _target_form(spec: dict, target: dict[AccuracyKey, float] | None, examples: dict[AccuracyKey, int] | None,
                 before: AccuracyKey, after: AccuracyKey) -> dict[str, float]:
    """A run trained on off-policy pairs: its accuracy (and standard error) on their answer form, before and
    after; NaN for any other run, and without the evaluations' counts."""
    if spec.get("pairs") != "off_policy" or target is None:
        return dict.fromkeys(TARGET_COLUMNS, math.nan)
    scored = {**_scored(target, examples, "before", before), **_scored(target, examples, "after", after)}
    return {f"target_{k}": v for k, v in scored.items()}


def _outcome(row: dict) -> str:
    """The run's outcome from the row's accuracies (`outcomes.outcome`)."""
    return outcome(row["accuracy_before"], row["accuracy_before_se"], row["accuracy_after"],
                   row["accuracy_after_se"], *(row.get(c, math.nan) for c in TARGET_COLUMNS))


def _untouched(row: dict) -> float:
    """% of entries the run left as its start: bitwise in the run's own precision (a bf16 run from an fp32
    start stores bf16(start) even when every update was zero, which `exact` counts as changed)."""
    return row["sparsity bf16_bitwise"] if row.get("precision") == "bf16" else row["sparsity exact"]


def subnetwork_table(runs: dict[str, dict], accuracy: dict[AccuracyKey, float],
                     subnet_diffs: dict[str, pd.DataFrame], trainable: dict[str, float],
                     random_controls: list[str] = (), clipped: dict[AccuracyKey, float] | None = None,
                     examples: dict[AccuracyKey, int] | None = None) -> pd.DataFrame:
    """Paper Table 3: full vs subnetwork accuracy (each with its binomial standard error in points,
    `accuracy_*_se`, NaN without `examples`), and % of entries equal between the two models; with
    random controls, the accuracy of the same retraining on a random mask ("same" density, or a fixed one),
    without which "the subnetwork recovers the accuracy" says nothing about this subnetwork. `clipped_*`:
    % of each evaluated checkpoint's completions clipped at max_new_tokens (NaN without `clipped`)."""
    rows = []
    for name in sorted(subnet_diffs):
        spec = runs[name]
        ds = spec["eval_dataset"]
        equal = {f"equal {k} (%)": _pct(v) for k, v in sparsity(subnet_diffs[name]).items() if k.startswith("tol=")}
        checkpoints = {"start": (ds, "base", spec["model"]), "full": (ds, "full", name),
                       "subnetwork": (ds, "subnet", name),
                       **{f"random_{c}": (ds, "random", f"{name}--{c}") for c in random_controls}}
        scored = {k: v for label, key in checkpoints.items()
                  for k, v in _scored(accuracy, examples, label, key).items()}
        rows.append({"run": name, **{c: spec[c] for c in ("algorithm", "regime", "lr", "precision")},
                     "subnetwork (% of entries)": _pct(trainable[name]), **scored,
                     **{f"clipped_{label}": _share(clipped, key) for label, key in checkpoints.items()},
                     **equal})
    return pd.DataFrame(rows)


def overlap_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 4 for every pair of runs: o1, o2, Jaccard and their random baselines (%)."""
    pct = ["sparsity_1", "sparsity_2", "o1", "random_o1", "o2", "random_o2", "jaccard", "random_jaccard"]
    out = pairs[["run_1", "run_2", *pct]].copy()
    out[pct] = out[pct] * 100.0
    return out


def training_record(checkpoint: str | os.PathLike) -> dict:
    """What the training stage recorded next to a checkpoint (run spec, log history, subnetwork counts)."""
    return read_json(Path(checkpoint) / "training.json")


def trainable_fraction(subnet_checkpoint: str | os.PathLike) -> float:
    """Share of entries a subnetwork run trained, as recorded by the training stage."""
    counts = read_json(Path(subnet_checkpoint) / "training.json", ["subnetwork"])["subnetwork"]
    return counts["trainable"] / counts["total"]


def _stem(path: str | os.PathLike, suffix: str = ".parquet") -> str:
    return Path(path).name.removesuffix(suffix)


def study_tables(runs: dict[str, dict], warmup: dict | None, evals: list[str], run_checkpoints: list[str],
                 warmup_checkpoint: list[str], run_diffs: list[str], warmup_diff: list[str],
                 subnet_diffs: list[str], subnet_checkpoints: list[str], overlap: str,
                 random_controls: list[str] = (), *, max_clipped_share: float) -> dict[str, pd.DataFrame]:
    """The study's tables from the stage outputs (paths as the `tables` rule lists them).

    Evaluation paths are results/eval/<dataset>/<variant>/<checkpoint>.parquet: accuracy, the share of
    clipped completions and the number of examples scored (a Parquet's rows: its accuracy's n) are keyed the
    same way.
    """
    scored = {(*Path(p).parts[-3:-1], _stem(p)): read_parquet(p, ["correct", "clipped", "correct_off_policy_form"])
              for p in evals}
    accuracy = {key: df["correct"].mean() for key, df in scored.items()}
    target = {key: df["correct_off_policy_form"].mean() for key, df in scored.items()}
    clipped = {key: df["clipped"].mean() for key, df in scored.items()}
    examples = {key: len(df) for key, df in scored.items()}
    records = {Path(c).name: training_record(c) for c in run_checkpoints}
    records.update({"sft-from-init": training_record(c) for c in warmup_checkpoint})
    full = {_stem(p): read_diff(p) for p in run_diffs}
    warmup_table = read_diff(warmup_diff[0]) if warmup_diff else None
    subnet = {_stem(p): read_diff(p) for p in subnet_diffs}
    trainable = {Path(c).name: trainable_fraction(c) for c in subnet_checkpoints}
    return {
        "sparsity": sparsity_table(runs, full, accuracy, records, warmup, warmup_table, clipped, max_clipped_share,
                                   examples, target),
        "subnetwork": subnetwork_table(runs, accuracy, subnet, trainable, random_controls, clipped, examples),
        "overlap": overlap_table(read_parquet(overlap, ["run_1", "run_2"])),
    }


def rank_table(ranks: dict[str, pd.DataFrame], runs: dict[str, dict]) -> pd.DataFrame:
    """Paper Table 2 per run: mean update rank (% of the maximum), stable and effective rank by module
    group (attention, mlp, embedding, ...), from the per-tensor rank rows of each run."""
    from .rank import rank_summary

    rows = []
    for name in sorted(ranks):
        for group, stats in rank_summary(ranks[name].to_dict("records")).items():
            rows.append({"run": name, **{c: runs[name][c] for c in ("algorithm", "regime", "lr", "precision")},
                         "group": group, **stats})
    return pd.DataFrame(rows)


def layers_table(diffs: dict[str, pd.DataFrame], label: str) -> pd.DataFrame:
    """Paper Fig. 3 as a table: sparsity (%) under `label` per run and layer (rows) x module (columns)."""
    from .layers import layer_sparsity

    long = pd.concat([layer_sparsity(diffs[name], label).assign(run=name) for name in sorted(diffs)])
    wide = long.pivot_table(index=["run", "layer"], columns="module", values="sparsity (%)", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def pair_likelihoods(run_pairs: dict[str, str], files: list[str]) -> dict[str, tuple[float, float]]:
    """Per run that trains on pairs: the mean log-likelihood of its chosen and rejected sides under the start
    model, as recorded in its pairs file (NaN for pairs that carry none, such as a dataset's own)."""
    read = {f: read_parquet(f) for f in files}
    out = {}
    for run, file in run_pairs.items():
        df = read[file]
        out[run] = tuple(float(df[c].mean()) if c in df else float("nan") for c in ("chosen_logp", "rejected_logp"))
    return out


def dynamics_tables(steps: list[str], splits: list[str]) -> dict[str, pd.DataFrame]:
    """Sparsity against step, and the never / back / final split, of every run with snapshots."""
    run = lambda path: Path(path).parent.name  # noqa: E731  results/dynamics/<run>/steps.parquet
    frames = [read_parquet(p).assign(run=run(p)) for p in steps]
    parts = [read_parquet(p).assign(run=run(p)) for p in splits]
    first = lambda df: df[["run", *[c for c in df.columns if c != "run"]]]  # noqa: E731
    return {"dynamics": first(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame(),
            "dynamics_split": first(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame()}


TITLES = {"sparsity": "Update sparsity (% of entries unchanged)", "subnetwork": "Subnetwork vs full finetuning",
          "overlap": "Overlap of updated entries between runs (%)",
          "rank": "Update rank by module group (mean rank as % of the maximum; stable and effective rank)",
          "layers": "Sparsity (%) by layer and module",
          "pairs_layers": "Sparsity (%) of the public checkpoint pairs by layer and module",
          "algorithms": "Accuracy gain and sparsity per algorithm (mean over its runs, per regime)",
          "ablations": "Ablations: KL penalty, gradient clipping and the optimizer (runs matched in every other setting)",
          "precision": "Sparsity with fp32 vs bf16 weights (runs matched in every other setting)",
          "controls": "RL runs and their matched SFT controls (same start and every shared training setting)",
          "frontier": "Sparsity against accuracy gain: each RL run beside the SFT runs interpolated at its gain",
          "data": "On- vs off-policy preference data (same algorithm and prompts; log-likelihood under the start model)",
          "dynamics": "Training dynamics: sparsity against step, and % changed since the previous snapshot",
          "dynamics_split": "Entries never updated, updated then back to their start value, and in the final subnetwork (%)",
          "ulp": "Total update of each entry in half bf16 ulps of its start value (runs with fp32 weights; % of entries per bin)",
          "ulp_summary": "Entries below half a bf16 ulp beside the measured bf16 sparsity, and the mean step per entry relative to lr",
          "step_sparsity": "Step-level sparsity: entries whose bf16 value changed in each optimizer step (runs with step_sparsity)",
          "step_sparsity_summary": "Step-level sparsity per run: % of entries changed per step, and the steps with no visible change"}

COMPARISON_TABLES = ("algorithms", "controls", "frontier", "ablations", "precision", "data", "dynamics",
                     "dynamics_split")


def write_table(df: pd.DataFrame, md_path: str | os.PathLike, csv_path: str | os.PathLike, title: str,
                tex_path: str | os.PathLike | None = None) -> None:
    """Markdown with 2 decimals (learning rates in scientific notation), CSV at full precision, and LaTeX
    (booktabs rules, special characters escaped) for a paper."""
    shown = df.assign(lr=df["lr"].map(lambda v: f"{v:.0e}")) if "lr" in df else df
    as_text = [list(df.columns).index("lr")] if "lr" in df else []
    body = shown.to_markdown(index=False, floatfmt=".2f", disable_numparse=as_text) if not df.empty else "_(no rows)_"
    write_text(f"# {title}\n\n{body}\n", md_path)
    write_text(df.to_csv(index=False), csv_path)
    if tex_path is not None:
        label = "tab:" + Path(tex_path).stem.replace("_", "-")
        tex = (shown.to_latex(index=False, float_format="%.2f", caption=title, label=label, escape=True)
               if not df.empty else f"% {title}: no rows\n")
        write_text(tex, tex_path)


def pairs_table(pairs: dict[str, dict], diffs: dict[str, pd.DataFrame], downloads: dict[str, dict]) -> pd.DataFrame:
    """Paper Tables 1/6: our sparsity per criterion beside the published one, and what was compared."""
    from .diff import skipped, sparsity
    from .jobs import download_slug

    def described(ref: dict) -> str:
        record = downloads.get(download_slug(ref)) if ref["source"] == "hub" else None
        return f"{ref['name']}@{record['revision'][:12]}" if record else ref["name"]

    rows = []
    for name in sorted(pairs):
        pair, ours = pairs[name], sparsity(diffs[name])
        row = {"pair": name, "algorithm": pair.get("algorithm", ""), "before": described(pair["before"]),
               "after": described(pair["after"])}
        for label, value in ours.items():
            row[f"ours {label}"] = _pct(value)
            if label in pair.get("published", {}):
                row[f"paper {label}"] = pair["published"][label]
        row["tensors not fully compared"] = len(skipped(diffs[name]))
        rows.append(row)
    return pd.DataFrame(rows)
