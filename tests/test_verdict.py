"""The decision rule and how a verdict is reported, defined once (utils/inference/verdict.py) and read by every
path: the rule itself, uncertainty, the two-part rule, the one-line format, and files to verdicts for any scorer."""
import re
from pathlib import Path

import numpy as np
import torch

from tests.conftest import REPO, write_split
from utils.inference.classify import classify_files
from utils.inference.verdict import (
    VERDICT_CLASSES,
    decide,
    edit_scores,
    format_line,
    possibly_edited,
    ranking_probabilities,
    score_rows,
    uncertain,
    verdict_fields,
    verdicts,
)


def test_decide_is_argmax_or_the_tuned_threshold_for_numpy_and_torch_alike():
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.65, 0.35]])
    assert decide(probs).tolist() == [0, 1, 0] and decide(probs, 0.3).tolist() == [0, 1, 1]
    assert decide(torch.from_numpy(probs), 0.3).tolist() == [0, 1, 1]
    assert decide(np.array([[0.1, 0.5, 0.4]]), 0.3).tolist() == [1]  # three classes: the threshold is not used


def test_uncertain_follows_the_decision_rule():
    # threshold 0.9: P(EDITED) = 0.85 is a REAL verdict right at the cut (uncertain); 0.3 is a clear REAL
    assert uncertain([[0.15, 0.85], [0.7, 0.3], [0.02, 0.98], [0.06, 0.94]], threshold=0.9).tolist() == [
        True, False, False, True]
    # without a tuned threshold: the chosen class's probability under 0.75
    assert uncertain([[0.3, 0.7], [0.2, 0.8], [0.8, 0.2]]).tolist() == [True, False, False]
    assert uncertain([[0.5, 0.3, 0.2], [0.8, 0.1, 0.1]]).tolist() == [True, False]


def test_the_two_part_rule_asks_fake_first_then_the_edit_cut():
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.9, 0.1]])  # REAL, FAKE: image 0 is FAKE
    edit = np.array([0.9, 0.9, 0.1])
    classes, labels, _ = verdicts(probs, ["REAL", "FAKE"], None, edit, {"pixels": 9, "cut": 0.5})
    assert classes == VERDICT_CLASSES and [classes[k] for k in labels] == ["FAKE", "EDITED", "REAL"]
    assert verdicts(probs, ["REAL", "FAKE"])[1].tolist() == [1, 0, 0]  # no rule: the model's own
    ranked = ranking_probabilities(probs[:, 1], edit, 0.5)
    assert np.allclose(ranked.sum(1), 1) and ranked[1, 1] > ranked[2, 1]  # the edit score ranks EDITED


def test_a_strong_edit_wins_over_a_middling_p_fake_only_where_the_rule_says_so():
    probs = np.array([[0.2, 0.8], [0.02, 0.98], [0.2, 0.8]])  # all three FAKE by P(FAKE)
    edit = np.array([0.9, 0.9, 0.1])
    rule = {"pixels": 9, "cut": 0.5}
    fake_first = verdicts(probs, ["REAL", "FAKE"], None, edit, rule)[1]
    edit_wins = verdicts(probs, ["REAL", "FAKE"], None, edit, {**rule, "edit_wins_below": 0.9})[1]
    assert fake_first.tolist() == [2, 2, 2] and edit_wins.tolist() == [1, 2, 2]


def test_possibly_edited_is_the_band_between_two_cuts_and_is_uncertain():
    probs = np.array([[0.95, 0.05]] * 4 + [[0.05, 0.95]])
    edit = np.array([0.1, 0.3, 0.45, 0.6, 0.45])
    rule = {"pixels": 9, "cut": 0.5, "possible_cut": 0.3}
    _, labels, unsure = verdicts(probs, ["REAL", "FAKE"], None, edit, rule)
    band = possibly_edited(labels, edit, rule)
    assert labels.tolist() == [0, 0, 0, 1, 2] and band.tolist() == [False, True, True, False, True]
    assert unsure.tolist() == [False, True, True, False, True]  # clear P(FAKE), but an edit may be there
    assert not possibly_edited(labels, edit, {"pixels": 9, "cut": 0.5}).any()  # a rule without the band
    r = verdict_fields(probs[1], ["REAL", "FAKE"], None, 0.3, rule)
    assert r["label"] == "REAL" and r["possibly_edited"] and r["possible_cut"] == 0.3
    assert format_line({"path": "p.jpg", **r}).split("\t")[4:] == ["possibly edited", "uncertain"]
    assert "possibly edited from 0.300" in score_rows(r)[1][0]


def test_the_edit_score_sees_an_edit_spread_over_the_whole_image_only_with_its_weight():
    quiet = np.full((1, 32, 32), 0.02, np.float32)
    region = quiet.copy()
    region[0, 10:13, 4:7] = 0.9
    specks = np.where(np.random.default_rng(0).random((1, 32, 32)) < 0.6, 0.9, 0.05).astype(np.float32)
    maps = np.concatenate([quiet, region, specks])
    local = edit_scores(maps, 9)
    both = edit_scores(maps, 9, whole_weight=2.0)
    assert local[2] < 0.01 and both[2] > 0.5  # specks everywhere lift the median: only the mean sees them
    assert both[1] == local[1] and both[0] < 0.05  # a region still scores as a region; a quiet map stays quiet


def test_one_line_per_file_for_every_kind_of_model():
    two_part = verdict_fields([0.9, 0.1], ["REAL", "FAKE"], None, 0.6, {"pixels": 9, "cut": 0.5}, 2.0, 1.0)
    assert two_part["label"] == "EDITED" and two_part["outside"] and two_part["outside_score"] == 2.0
    line = format_line({"path": "a.jpg", **two_part, "edit_box": [1, 2, 3, 4]})
    assert line.split("\t") == ["a.jpg", "EDITED", "0.1000", "edit_score=0.6000", "outside", "edit_box=1,2,3,4"]
    assert score_rows(two_part)[1][2] == 0.6  # the edit score's bar: 0.5 at the cut
    three = verdict_fields([0.2, 0.5, 0.3], ["REAL", "EDITED", "FAKE"])
    assert format_line({"path": "b.png", **three}).split("\t") == [
        "b.png", "EDITED", "0.5000", "REAL=0.2000 EDITED=0.5000 FAKE=0.3000", "uncertain"]
    assert format_line({"path": "c", "error": "not an image"}) == "c\tERROR\tnot an image"


class FixedScorer:
    """A scorer that gives each view the next row of `probs`, as utils.inference.classify asks of one."""
    classes, threshold, edit_rule, image_size, resize, outside_cut = ["REAL", "EDITED"], 0.9, None, 32, "shrink", None

    def __init__(self, probs):
        self.probs = np.asarray(probs)

    def score(self, views):
        return self.probs[:len(views)], None

    def outside(self, views):
        return None


def test_files_are_marked_uncertain_with_the_models_threshold(tmp_path):
    folder = write_split(tmp_path / "x", {"REAL": 2}, seed=1)
    rows = list(classify_files(FixedScorer([[0.7, 0.3], [0.15, 0.85]]), [folder]))
    assert [r["uncertain"] for r in rows] == [False, True] and [r["label"] for r in rows] == ["REAL", "REAL"]


def test_the_decision_rule_is_written_in_one_place():
    """No module but utils/inference/verdict.py turns probabilities into a class: no other decide, no threshold
    or 0.5 comparison on a probability, no argmax over classes."""
    rule = re.compile(r"def _?decide\b|def verdict_indices|\[:, ?1\] >= ?threshold|p_fake\"?\]? >= 0\.5|\.argmax\(1\)")
    own = Path("utils/inference/verdict.py")
    found = [str(p.relative_to(REPO)) for p in sorted(REPO.rglob("*.py"))
             if p.relative_to(REPO).parts[0] not in (".venv", "tests", "bench") and p.relative_to(REPO) != own
             and rule.search(p.read_text())]
    assert found == []
