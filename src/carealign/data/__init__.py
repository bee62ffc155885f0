"""Prompt data: the record type and its loaders."""

from carealign.data.loaders import load_cares, load_prompt_file, load_prompts, load_sample, sample_path
from carealign.data.records import PromptRecord

__all__ = ["PromptRecord", "load_cares", "load_prompt_file", "load_prompts", "load_sample", "sample_path"]
