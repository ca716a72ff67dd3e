#!/usr/bin/env python
"""Export a checkpoint to ONNX for deployment without PyTorch.

The graph takes float32 (N, 3, 32, 32) RGB images in 0..1 (uint8 / 255) with any batch size, and holds the
normalisation, the calibration temperature and the decision rule: outputs `probabilities` (N, classes) and
`label` (N,). Class names and the input convention are in the model's metadata. The exported model is checked
against PyTorch on random images before this exits. Use it with `predict.py --model model.onnx PATH...`.
"""
import argparse
import sys

from utils import cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train.py")
    p.add_argument("--out", default="model.onnx", help="where to write the model (default %(default)s)")
    p.add_argument("--opset", type=int, default=18)
    args = p.parse_args(argv)
    from utils.inference.checkpoint import load_classifier
    from utils.inference.onnx_model import OnnxClassifier, export_onnx, max_difference
    model, ck = load_classifier(args.checkpoint)
    export_onnx((model, ck), args.out, args.opset)
    difference = max_difference((model, ck), OnnxClassifier(args.out))
    print(f"wrote {args.out}: {ck['model_name']}, classes {ck['classes']}; max |p_onnx - p_torch| = "
          f"{difference:.2e} on 256 random images", file=sys.stderr)
    return 0 if difference <= 1e-4 else 1


if __name__ == "__main__":
    cli.run(main)
