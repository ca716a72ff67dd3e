"""Using a trained model, from files or cached splits to verdicts and metrics.

- `verdict`: the decision rule (scores -> labels, uncertainty) and how one verdict is reported; no torch
- `files` (which files a path names, a file's views and tiles) and `classify` (files -> verdicts, for any
  scorer); no torch
- `checkpoint` (the one way in and out of a .pt), `scoring` (running a model: devices, batches, ONNX Runtime),
  `predict` (a checkpoint's verdicts on files and on images), `evaluation` (metrics on splits),
  `metrics`, `outside` (the outside-what-I-know score), `onnx_model` (export, and runs without torch)

This package's `__init__` imports nothing, so `verdict`, `files`, `classify` and `onnx_model` load without torch.
"""
