"""Prompt data: the record type and its loaders."""

from carealign.data.loaders import load_cares, load_prompt_file, load_prompts, load_sample, sample_path
from carealign.data.public import PUBLIC_SOURCES, load_public, public_split
from carealign.data.records import PromptRecord

__all__ = [
    "PUBLIC_SOURCES",
    "PromptRecord",
    "load_cares",
    "load_prompt_file",
    "load_prompts",
    "load_public",
    "load_sample",
    "public_split",
    "sample_path",
]
