"""Validation and selection: paired comparisons and the promotion rule."""

from carealign.select.paired import PairedDiff, paired_bootstrap, per_prompt
from carealign.select.rule import Selection, SelectionRule, select

__all__ = ["PairedDiff", "Selection", "SelectionRule", "paired_bootstrap", "per_prompt", "select"]
