"""The shipped detectors (weights/): how each is trained and measured (`detectors`: DETECTORS, `ship`), and the
two-part detectors' networks joined into one checkpoint with its edit rule (`two_part`). ship.py is its command
line."""
