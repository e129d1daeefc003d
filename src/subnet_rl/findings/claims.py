"""The paper's claims that the study checks: one record per claim, in one ordered registry.

A claim is its id (the config's `findings:` key and the findings table's `claim`), its statement, the
default threshold its check applies (overridable in the config), how that threshold reads in the table,
and the check itself. A new claim is one entry here (and its key in the config schema, which a test
holds equal to this registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..uncertainty import NOISE_Z
from . import sparsity_checks as sparsity
from . import subnetwork_checks as subnetwork
from .verdicts import Check


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    #: the default threshold, in the unit `threshold_text` shows.
    threshold: float
    threshold_text: Callable[[float], str]
    check: Check


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("rl-sparse", "RL finetuning leaves most parameter entries unchanged (its update is sparse).",
          50.0, lambda t: f"median >= {t:g}%", sparsity.rl_sparse),  # median sparsity of RL runs, %
    Claim("sft-dense", "SFT changes most parameter entries (its update is dense).",
          20.0, lambda t: f"median <= {t:g}%", sparsity.sft_dense),  # median sparsity of SFT runs, %
    Claim("matched-control",
          "At the same learning rate, steps and precision, an RL run is sparser than its SFT control.",
          # margin (points) by which RL must exceed its SFT control
          0.0, lambda t: f"RL > SFT + {t:g} points, every pair", sparsity.matched_control),
    Claim("matched-gain",
          "At the same accuracy gain, an RL run is sparser than SFT (its runs across learning rates, interpolated).",
          # margin (points) by which RL must exceed the SFT curve at its gain, beyond the gain's noise
          0.0, lambda t: f"RL > SFT at the same gain + {t:g} points, every RL run that learned, beyond the gain's "
                         f"noise ({NOISE_Z:g} SE)", sparsity.matched_gain),
    Claim("subnetwork-recovers", "Retraining only the RL subnetwork recovers the test accuracy of full finetuning.",
          # accuracy points the subnetwork may fall short of full finetuning
          2.0, lambda t: f"within {t:.1f} points (or above), every run, beyond noise (subnetwork - full > -{t:.1f} "
                         f"by {NOISE_Z:g} combined SE)", subnetwork.subnetwork_recovers),
    Claim("mask-beats-random", "The RL subnetwork beats a random mask of the same density, so the mask itself matters.",
          # margin (points) over the random mask of the same density
          0.0, lambda t: f"> random + {t:.1f} points by {NOISE_Z:g} combined SE (beyond noise), every run",
          subnetwork.mask_beats_random),
    Claim("subnetwork-same-weights",
          "Retraining the subnetwork alone reaches nearly the same weights as full finetuning.",
          # mean % of entries equal, at the largest tolerance
          90.0, lambda t: f"mean >= {t:g}%", subnetwork.subnetwork_same_weights),
    Claim("overlap-above-random", "Subnetworks of different runs overlap more than independent random masks would.",
          # share (0-1) of run pairs whose overlap beats random both ways
          0.9, lambda t: f">= {100 * t:g}% of pairs", subnetwork.overlap_above_random),
    Claim("full-rank", "Although sparse, the RL updates are nearly full rank.",
          90.0, lambda t: f"mean >= {t:g}%", subnetwork.full_rank),  # mean rank, % of the maximum
    Claim("layers-uniform", "The update sparsity is spread evenly over the layers, not concentrated in a few.",
          # largest std (points) of layer-mean sparsity within a run
          10.0, lambda t: f"spread <= {t:g} points", subnetwork.layers_uniform),
    Claim("in-distribution", "Training on in-distribution (on-policy) data is what makes the update sparse.",
          # margin (points) of on-policy over off-policy sparsity
          0.0, lambda t: f"on-policy > off-policy + {t:g} points, every algorithm", sparsity.in_distribution),
    Claim("precision", "Alternative explanation, not the paper's: bf16 storage explains the sparsity "
                       "(bf16 runs are much sparser than fp32 runs).",
          # points by which bf16 must be sparser than fp32
          20.0, lambda t: f"bf16 - fp32 >= {t:g} points, every (algorithm, lr)", sparsity.precision),
]}
