"""Training, evaluation and prediction as plain functions shared by the CLI scripts, the notebook and tests.

- `utils.checkpoint`: the one-file checkpoint (save, safe load)
- `utils.metrics`: classification metrics and their table
- `utils.training`: `train(...)` and the recipes
- `utils.inference`: `evaluate(...)`, `predict(...)`
- `utils.cli`: the scripts' shared error handling and exit codes
"""
