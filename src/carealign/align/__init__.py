"""The alignment loop: config, run directory, cycles."""

from carealign.align.config import AlignConfig, config_from_dict, default_config_yaml, load_config
from carealign.align.run import AlignmentRun, AlignResult, promoted_policy

__all__ = [
    "AlignConfig",
    "AlignResult",
    "AlignmentRun",
    "config_from_dict",
    "default_config_yaml",
    "load_config",
    "promoted_policy",
]
