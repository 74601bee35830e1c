"""Person detection on top-down thermal frames: a small CenterNet-style detector (model, targets,
loss, decoding, data, metrics, training loop and restore), whose boxes feed the action models."""
