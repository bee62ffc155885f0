"""Every command group of ``carealign``, registered by importing its module (one module per group)."""

from carealign.cli import alignment, data, evaluation, judging, review

__all__ = ["alignment", "data", "evaluation", "judging", "review"]
