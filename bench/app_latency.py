#!/usr/bin/env python
"""How long the web page takes to answer, over real HTTP on the loopback address: app.py's server started in
this process with the shipped detector, one warm-up request (the model loads on first use), then one test image
a request `--repeats` times, and a request of 16 images. Prints the wall time a request, client side
(upload, decoding, the verdict, Grad-CAM, the edit map, the page). The last line is one JSON object.

    python bench/app_latency.py [--repeats 20] [--detector shipped:three_class]
"""
import argparse
import json
import statistics
import threading
import time
import urllib.request
import uuid

from data import resolve_split
from shipping.detectors import regression_slice
from web.server import create_app


def post(url, files, detector):
    """One multipart POST of `files` (paths) -> (seconds, page text)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="detector"\r\n\r\n{detector}\r\n'.encode()]
    for path in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{path.name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request) as response:
        page = response.read().decode()
    return time.perf_counter() - start, page


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--detector", default="shipped:three_class")
    args = p.parse_args()
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    paths, _ = regression_slice(resolve_split("test-3class"), per_class=6)
    first, page = post(url, paths[:1], args.detector)
    assert 'class="verdict ' in page, "no verdict on the page"
    one = [post(url, [paths[i % len(paths)]], args.detector)[0] for i in range(args.repeats)]
    sixteen, page = post(url, paths[:16], args.detector)
    assert page.count('class="verdict ') == 16
    server.shutdown()
    result = {"first_request_s": round(first, 3), "one_image_median_s": round(statistics.median(one), 3),
              "one_image_max_s": round(max(one), 3), "sixteen_images_s": round(sixteen, 3),
              "repeats": args.repeats, "detector": args.detector}
    print(f"first request (loads the model): {first * 1000:.0f} ms; "
          f"one image: median {result['one_image_median_s'] * 1000:.0f} ms, "
          f"slowest {result['one_image_max_s'] * 1000:.0f} ms over {args.repeats}; 16 images: {sixteen * 1000:.0f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
