"""The model: finding its files, loading the checkpoint, task LoRA, int8, and feeding it batches."""
