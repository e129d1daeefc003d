"""The memory plan as people read it: one line per job when the workflow starts, the table of every term
(`subnet-rl plan`), and where each model's shape came from."""

from __future__ import annotations

from collections.abc import Iterable

from .jobs import RunPlan
from .terms import OPTIONAL_TERMS, TERMS, GiB, Terms


def job_key(plan: RunPlan) -> str:
    """The config entry of a job's settings."""
    return "model.warmup" if plan.variant == "warmup" else f"runs.{plan.run}"



def largest_terms(terms: Terms, n: int) -> list[tuple[int, str]]:
    """The n largest terms that are at least 1% of the total."""
    return sorted(((v, k) for k, v in terms.as_dict().items() if v and v >= terms.total / 100), reverse=True)[:n]


def gb(n: int) -> str:
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
    largest = largest_terms(terms, 2)
    verdict = "" if plan.fits is None else (f" of {plan.gpu_mem_gb:g}: fits" if plan.fits
                                            else f" of {plan.gpu_mem_gb:g}: does not fit")
    per = " per GPU" if plan.gpus else ""
    return (f"{head}: {where}, {gb(terms.total)} GB{per}{verdict} (largest: "
            + ", ".join(f"{k} {gb(v)}" for v, k in largest) + ")" + assumption(plan))


def assumption(plan: RunPlan) -> str:
    """What a plan assumed of a length set to `auto` ("" when nothing)."""
    if not plan.assumed:
        return ""
    return "".join(f"; {key} `auto`: assumed {value} tokens until the job measures its data"
                   for key, value in plan.assumed.items())


def format_table(plans: Iterable[RunPlan]) -> str:
    """A table per training job: every term in GB (2^30 bytes), the total and whether it fits; below it, the
    lengths assumed for `auto` ones."""
    plans = list(plans)
    # an optional term gets a column when some job has it
    columns = [*TERMS, *(t for t in OPTIONAL_TERMS if any(p.terms is not None and getattr(p.terms, t) for p in plans))]
    header = ["run", "variant", "GPUs", "nodes", "sharding", *columns, "total", "fits"]
    rows = []
    for plan in plans:
        terms = plan.terms
        cells = [plan.run, plan.variant, str(plan.gpus), str(plan.nodes),
                 plan.chosen + (" (auto)" if plan.sharding == "auto" and plan.world > 1 else "")]
        if terms is None:
            cells += ["?"] * len(columns) + ["unknown until fetched", "-"]
        else:
            cells += [gb(getattr(terms, t)) for t in columns] + [gb(terms.total)]
            cells.append("-" if plan.fits is None else "yes" if plan.fits else "NO")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    notes = [f"{plan.run} ({plan.variant}){assumption(plan)}" for plan in plans if plan.assumed and plan.known]
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows),
                      *(f"* {note}" for note in notes)])


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
