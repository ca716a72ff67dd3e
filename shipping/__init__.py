"""The shipped detectors (weights/): how each is trained and measured (`detectors`: DETECTORS, `ship`), and the
default detector's two parts joined into one checkpoint with its EDITED cut (`two_part`). ship.py is its command
line."""
