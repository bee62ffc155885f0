"""Training: DPO and KTO LoRA adapters with TRL and PEFT, and merging them into the next policy."""

from carealign.train.config import DemoPromptSet, DPOSection, KTOSection, LoRASection, SFTSection, TrainSection
from carealign.train.trainer import TrainResult, last_checkpoint, lora_config, merge_adapter, train_adapter, trl_args

__all__ = [
    "DPOSection",
    "DemoPromptSet",
    "KTOSection",
    "LoRASection",
    "SFTSection",
    "TrainResult",
    "TrainSection",
    "last_checkpoint",
    "lora_config",
    "merge_adapter",
    "train_adapter",
    "trl_args",
]
