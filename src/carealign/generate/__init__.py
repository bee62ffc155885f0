"""Generation: sample responses from a policy (Hugging Face or an OpenAI-compatible server)."""

from carealign.generate.base import (
    Completion,
    GenerationConfig,
    Generator,
    LabelScorer,
    build_messages,
)
from carealign.generate.registry import (
    DEFAULT_MODEL,
    REGISTERED_MODELS,
    load_generator,
    resolve_model_path,
)

__all__ = [
    "DEFAULT_MODEL",
    "REGISTERED_MODELS",
    "Completion",
    "GenerationConfig",
    "Generator",
    "LabelScorer",
    "build_messages",
    "load_generator",
    "resolve_model_path",
]
