"""Typed run specs built from the validated workflow config, and the config's checks.

`spec`: RunSpec (a run's identity and typed settings, `subnet_rl.settings`) from the config's sections;
`checks`: cross-field checks a JSON schema cannot express; `normalize`: values made canonical.
"""

from .checks import TRACKER_PACKAGES, check_references, folder_has_chat_template
from .normalize import coerce_scientific_notation, sort_keys_in_place
from .spec import (
           DEFAULT_MODEL,
           RunSpec,
           dataset_reward,
           dataset_task,
           settable,
           start_models,
           warmup_run,
)

__all__ = ["DEFAULT_MODEL", "TRACKER_PACKAGES", "RunSpec", "check_references", "coerce_scientific_notation",
           "dataset_reward", "dataset_task", "folder_has_chat_template", "settable", "sort_keys_in_place",
           "start_models", "warmup_run"]
