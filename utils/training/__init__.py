"""Training a model: `config` (TrainConfig, the named recipes), `run` (`train()`: data, the loop, calibration, the
test report), `training_data`, `loop` (the epoch loop and checkpoints), `optimization` (optimiser, schedule,
weight average), `budget` (epochs for a time budget), `precision`, `calibration`, `provenance`."""
