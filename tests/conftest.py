import os

import pytest

# Tests never reach a hub, and stay on the CPU threads they are given.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def completed_run(tmp_path_factory):
    """.test/config.yaml run to completion once per session: the end-to-end tests of the workflow read it, and
    the rerun tests start from a copy of it (a test that changes it works on its own copy)."""
    from test_workflow import finished_run

    return finished_run(tmp_path_factory, "e2e")
