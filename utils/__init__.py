"""Running models: training, evaluation, prediction and pictures, as plain functions shared by the command-line
scripts, the notebook, the bench and the tests (docs/design.md has the map).

- training: `config` (TrainConfig, the named recipes), `training` (`train()`), `training_data`, `train_loop`
  (the epoch loop and checkpoints), `budget` (epochs for a time budget), `precision`, `calibration`
- using a model: `checkpoint`, `inference` (evaluate, predict, robustness), `prediction` (files -> verdicts,
  no torch), `onnx_model`, `metrics`, `provenance`
- pictures: `plots`, `report`, `gradcam`
- running: `distributed` (torchrun), `cli` (one-line errors and exit codes)
"""
