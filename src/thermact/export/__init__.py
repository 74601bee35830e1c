"""Export of thermact models to ONNX and their onnxruntime runners (:mod:`thermact.export.onnx`)."""
