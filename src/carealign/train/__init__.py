"""Training: DPO and KTO LoRA adapters with TRL and PEFT, and merging them into the next policy."""

from carealign.train.config import TrainSection
from carealign.train.trainer import TrainResult, lora_config, merge_adapter, train_adapter, trl_args

__all__ = ["TrainResult", "TrainSection", "lora_config", "merge_adapter", "train_adapter", "trl_args"]
