"""carealign: safety evaluation and iterative preference alignment of healthcare LLM assistants.

The public Python API mirrors the CLI::

    from carealign import EvalConfig, evaluate, load_prompts, make_judge, judge_rows
"""

from carealign.data import PromptRecord, load_prompts
from carealign.domain import HARM_LEVELS, METHODS, PRINCIPLES, Verdict
from carealign.errors import CarealignError, ConfigError, DataError, JudgeError, ModelError
from carealign.evaluate import EvalConfig, EvalResult, evaluate, judge_rows
from carealign.generate import GenerationConfig, load_generator
from carealign.judge import Judge, JudgeItem, Judgement, make_judge
from carealign.score import SafetyPolicy, compute_metrics, load_policy

__version__ = "0.1.0"

__all__ = [
    "HARM_LEVELS",
    "METHODS",
    "PRINCIPLES",
    "CarealignError",
    "ConfigError",
    "DataError",
    "EvalConfig",
    "EvalResult",
    "GenerationConfig",
    "Judge",
    "JudgeError",
    "JudgeItem",
    "Judgement",
    "ModelError",
    "PromptRecord",
    "SafetyPolicy",
    "Verdict",
    "__version__",
    "compute_metrics",
    "evaluate",
    "judge_rows",
    "load_generator",
    "load_policy",
    "load_prompts",
    "make_judge",
]
