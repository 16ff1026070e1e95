"""Merge the LoRA into the generator and export it to ONNX, checked against torch."""
