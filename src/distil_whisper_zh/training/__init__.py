"""What distillation and fine-tuning share: options, label batches, encoder cache, checkpoints, log, loop."""
