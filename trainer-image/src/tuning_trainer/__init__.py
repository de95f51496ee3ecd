"""tuning_trainer: fine-tune a causal LM (LoRA, QLoRA or full) with checkpoints that survive spot.

tuning-trainer train --config configs/tiny-llama-lora.yaml
"""

__version__ = "0.1.0"
