"""The alignment loop: config, run directory, cycles."""

from carealign.align.config import AlignConfig, config_from_dict, default_config_yaml, load_config
from carealign.align.run import AlignmentRun, AlignResult, CycleContext
from carealign.align.stages import STAGES, Stage
from carealign.rundir import RunLayout, promoted_policy

__all__ = [
    "STAGES",
    "AlignConfig",
    "AlignResult",
    "AlignmentRun",
    "CycleContext",
    "RunLayout",
    "Stage",
    "config_from_dict",
    "default_config_yaml",
    "load_config",
    "promoted_policy",
]
