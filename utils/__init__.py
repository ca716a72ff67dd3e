"""Running models, grouped by job (docs/design.md has the map):

- `training/`: a training run, from its config to a calibrated checkpoint
- `inference/`: a trained model's verdicts, on files, on cached splits, under ONNX Runtime
- `reporting/`: pictures and tables of those verdicts
- `distributed` (torchrun) and `cli` (one-line errors and exit codes), used by all of them
"""
