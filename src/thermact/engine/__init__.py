"""Training machinery: LR schedule, checkpoints, the training loop."""
