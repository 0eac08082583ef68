"""Model loading, datasets, LoRA training and generation for steps 4–6."""
