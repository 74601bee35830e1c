"""Simple baselines of every results table (:mod:`thermact.baselines.classifier`)."""
