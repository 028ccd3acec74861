"Training LoRA adapters: licensed data, the training run, merged composites."
