"""Preference building: judged samples -> DPO pairs and KTO examples."""

from carealign.preferences.build import (
    DPO_COLUMNS,
    KTO_COLUMNS,
    Preferences,
    PreferenceStats,
    all_bad_prompts,
    all_good_prompts,
    build_preferences,
    trl_columns,
)

__all__ = [
    "DPO_COLUMNS",
    "KTO_COLUMNS",
    "PreferenceStats",
    "Preferences",
    "all_bad_prompts",
    "all_good_prompts",
    "build_preferences",
    "trl_columns",
]
