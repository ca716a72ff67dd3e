"""Pictures and tables of a model's verdicts: `plots` (grids, curves, confusion), `report` (a run's pictures),
`gradcam`, `bias` (the bias table of label-neutral changes)."""
