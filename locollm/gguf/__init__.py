"GGUF files: the base model and its metadata, LoRA adapters converted from peft, LoRAs merged into the base."
