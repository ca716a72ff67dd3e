"""Shared by the command-line scripts: a user error is one line on stderr and an exit code, not a traceback."""
import sys

from data import DataError
from utils.checkpoint import CheckpointError

USAGE_ERROR = 2  # argparse's own code for bad usage


def run(main):
    """Run `main()`; known user errors (bad data, bad checkpoint) print one line and exit 2."""
    try:
        code = main()
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
