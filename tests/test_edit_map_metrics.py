"""Pixel metrics of edit maps on hand-made masks, whose F1 and IoU are known."""
import numpy as np
import pytest

from utils.inference.metrics import edit_map_metrics


def test_known_f1_iou_and_false_maps():
    truth = np.zeros((3, 8, 8), bool)
    truth[0, 0:2, 0:4] = True          # 8 edited pixels
    truth[1, 4:8, 4:8] = True          # 16 edited pixels
    maps = np.zeros((3, 8, 8))
    maps[0, 0:2, 0:2] = 0.9            # 4 of the 8 found, nothing else: F1 = 8/12, IoU = 4/8
    maps[0, 7, 7] = 0.4                # below the threshold: not counted
    maps[1, 4:8, 4:8] = 0.8            # all 16 found
    maps[1, 0, 0:4] = 0.7              # and 4 false pixels: F1 = 32/36, IoU = 16/20
    maps[2, 0, 0:3] = 0.95             # a clean image with a 3-pixel map: under the 4-pixel area, not a false map
    m = edit_map_metrics(maps, truth)
    assert m["edited_images"] == 2 and m["clean_images"] == 1
    assert m["pixel_f1"] == pytest.approx((8 / 12 + 32 / 36) / 2)
    assert m["pixel_iou"] == pytest.approx((4 / 8 + 16 / 20) / 2)
    assert m["false_map_rate"] == 0.0
    maps[2, 1, 0] = 0.95               # now 4 pixels: a false map
    assert edit_map_metrics(maps, truth)["false_map_rate"] == 1.0


def test_a_perfect_map_and_an_empty_one():
    truth = np.zeros((2, 4, 4), bool)
    truth[:, 1:3, 1:3] = True
    perfect = edit_map_metrics(truth.astype(float), truth)
    assert perfect["pixel_f1"] == perfect["pixel_iou"] == perfect["pixel_roc_auc"] == 1.0
    empty = edit_map_metrics(np.zeros((2, 4, 4)), truth)
    assert empty["pixel_f1"] == empty["pixel_iou"] == 0.0 and empty["false_map_rate"] is None


def test_edited_recall_by_kind_and_real_false_alarms():
    from utils.inference.metrics import edited_recall
    classes = ["REAL", "EDITED", "FAKE"]
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 2]
    preds = [1, 0, 1, 1, 0, 1, 0, 0, 1]
    kinds = ["blur_patch", "blur_patch", "copy_patch", "copy_patch", None, None, None, None, None]
    r = edited_recall(labels, preds, classes, kinds)
    assert r["edited_recall_by_kind"] == {"blur_patch": {"recall": 0.5, "n": 2}, "copy_patch": {"recall": 1.0, "n": 2}}
    assert r["real_called_edited"] == 0.25
    assert edited_recall([0, 1], [0, 1], ["REAL", "FAKE"], [None, None]) == {}
