"""Tensor operations written in plain PyTorch (no compiled ops, no torchvision)."""
