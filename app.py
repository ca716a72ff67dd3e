#!/usr/bin/env python
"""A local web page for your own images: drop one or many, and get for each the verdict (REAL, EDITED or FAKE),
the calibrated probabilities, "uncertain" when it is, the 32x32 view the model saw, its Grad-CAM and, when an
edit is likely, the edit map. The shipped detectors (weights/) and every runs/*/checkpoint.pt can be chosen.

    python app.py                      # http://127.0.0.1:8000, this machine only
    python app.py --port 8080 --host 0.0.0.0   # reachable from your network: anyone there can upload

Flask, not Gradio: one small dependency, a plain HTML form that works without JavaScript or anything fetched
from the internet, and the same predict() path as predict.py (README, "The web page").
"""
import argparse
import sys

from utils import cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine "
                                                       "only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu", help="where the models run (default %(default)s; auto picks a GPU)")
    p.add_argument("--runs", default="runs", help="folder whose */checkpoint.pt are offered (default %(default)s)")
    args = p.parse_args(argv)
    from werkzeug.serving import make_server

    from web.server import create_app
    app = create_app(args.runs, device=args.device)
    choices = app.extensions["detectors"].choices()
    server = make_server(args.host, args.port, app, threaded=True)
    where = "this machine only" if args.host.startswith("127.") or args.host == "localhost" else \
        "ANY machine that can reach this address"
    print(f"serving on http://{args.host}:{server.server_port} ({where}); {len(choices)} detector(s): "
          f"{', '.join(label for _, label in choices) or 'none (make weights, or train a run)'}; Ctrl-C stops",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    cli.run(main)
