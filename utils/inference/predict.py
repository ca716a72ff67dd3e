"""A checkpoint's verdicts: on files (`predict`, through utils.inference.classify) and on uint8 images in memory
(`score_images`, for evaluation, the bias table and shipping). Both make their verdicts with
utils.inference.verdict."""
import numpy as np
import torch

from data import DataError
from models import probabilities
from utils.inference.checkpoint import image_view, load_classifier
from utils.inference.classify import classify_files
from utils.inference.outside import outside_scores
from utils.inference.scoring import run_with_map, select_device
from utils.inference.verdict import possibly_edited, ranking_probabilities, rule_edit_scores, verdicts


class CheckpointScorer:
    """A loaded checkpoint as utils.inference.classify's scorer: probabilities, edit maps and outside scores of
    uint8 views, and the settings its verdicts are made with."""

    def __init__(self, classifier, batch_size=None, device="cpu"):
        self.model, ck = classifier
        self.batch_size, self.device = batch_size, device
        self.classes, self.threshold, self.edit_rule = ck["classes"], ck.get("threshold"), ck.get("edit_rule")
        self.image_size, self.resize = image_view(ck)
        self.outside_stats = ck.get("outside")
        self.outside_cut = self.outside_stats["threshold"] if self.outside_stats else None

    def score(self, views):
        logits, maps = run_with_map(self.model, torch.from_numpy(views), self.batch_size, self.device)
        return probabilities(logits).numpy(), None if maps is None else maps.numpy()

    def outside(self, views):
        if not self.outside_stats:
            return None
        return outside_scores(self.model, self.outside_stats, torch.from_numpy(views))


def predict(checkpoint, paths, batch_size=None, device="auto", progress=False, masks_dir=None, keep_arrays=False):
    """Yield one dict per file, in order (utils.inference.classify.classify_files says what each holds).
    `checkpoint`: a path or a loaded (model, checkpoint dict) pair."""
    device = select_device(device)
    model, ck = load_classifier(checkpoint, device)
    if masks_dir is not None and not model.has_edit_map:
        raise DataError(f"{ck['model_name']} has no edit map to write (models with one: edit_map, edit_map_srm, "
                        "edit_map_bayar, two_part)")
    yield from classify_files(CheckpointScorer((model, ck), batch_size, device), paths, progress=progress,
                              masks_dir=masks_dir, keep_arrays=keep_arrays)


def score_images(checkpoint, images, batch_size=None, device="cpu") -> dict:
    """A checkpoint's verdicts on uint8 images (N, 3, H, W): dict(probs (N, C), maps (N, H, W) or None, classes
    (the verdicts'), predictions (N,) indices into them, edit_scores (N,) or None, uncertain (N,) bool,
    possibly_edited (N,) bool: the "possibly edited" band of verdicts not EDITED). A
    two-part detector (an `edit_rule`) gives REAL / EDITED / FAKE verdicts; its `probs` are then
    `verdict.ranking_probabilities`: a ranking for the ROC-AUC, not calibrated probabilities."""
    model, ck = load_classifier(checkpoint, device)
    logits, maps = run_with_map(model, images, batch_size, device)
    probs = probabilities(logits).numpy()
    maps = None if maps is None else maps.numpy()
    rule = ck.get("edit_rule")
    edit = rule_edit_scores(maps, rule) if rule else None
    classes, predictions, unsure = verdicts(probs, ck["classes"], ck.get("threshold"), edit, rule)
    if rule:
        probs = ranking_probabilities(probs[:, ck["classes"].index("FAKE")], edit, rule["cut"])
    return dict(probs=probs, maps=maps, classes=classes, predictions=np.asarray(predictions), edit_scores=edit,
                uncertain=unsure, possibly_edited=possibly_edited(predictions, edit, rule))
