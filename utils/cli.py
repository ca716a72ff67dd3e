"""Shared by the command-line scripts: a user error is one line on stderr and an exit code, not a traceback.
Imports no torch, so that predict.py with an ONNX model runs without it."""
import sys

from data import DataError

USAGE_ERROR = 2  # argparse's own code for bad usage


class UserError(Exception):
    """A problem the user can fix (a missing or foreign model file, ...): the message says which file and what."""


def run(main):
    """Run `main()`; known user errors (bad data, bad model file) print one line and exit 2."""
    try:
        code = main()
    except (DataError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
