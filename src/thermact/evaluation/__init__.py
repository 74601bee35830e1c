"""Evaluation: frame-mAP by the AVA protocol and classification metrics on GT boxes."""
