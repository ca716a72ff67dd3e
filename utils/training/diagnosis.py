"""What a finished run says about itself, at the end of its log, in history.json and in train()'s result: a run
whose validation accuracy sits at chance while its training accuracy climbed, or whose validation ranking
(ROC-AUC) is far better than its verdicts' accuracy, learned something it does not answer with."""
import numpy as np

from utils.inference.verdict import decide

AT_CHANCE = 0.05   # validation accuracy within this of the largest class's share is "at chance"
CLIMBED = 0.15     # ... while training accuracy rose this far above it
CUT_GAP = 0.10     # the best single cut on the validation scores beats the verdicts' accuracy by this much


def best_cut_accuracy(labels, scores) -> float:
    """Two classes: the accuracy of the best single cut on `scores` (P(positive)): what the ranking allows."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # a cut just above position k calls the first k negative: right on the negatives there, positives beyond
    negatives_below = np.r_[0, np.cumsum(sorted_labels == 0)]
    positives_above = np.r_[np.cumsum((sorted_labels == 1)[::-1])[::-1], 0]
    at_a_change = np.r_[True, sorted_scores[1:] != sorted_scores[:-1], True]  # tied scores fall on one side
    return float(((negatives_below + positives_above)[at_a_change]).max() / max(len(labels), 1))


def diagnose(train_accuracy, val_labels, val_probs, threshold=None) -> list:
    """-> what is wrong with a run's best checkpoint, each with what to try (empty when nothing is).
    `val_probs`: its (N, C) validation probabilities; `train_accuracy`: its last epoch's training accuracy."""
    val_labels, val_probs = np.asarray(val_labels), np.asarray(val_probs)
    if len(val_labels) == 0:
        return []
    said = []
    accuracy = float(np.mean(np.asarray(decide(val_probs, threshold)) == val_labels))
    chance = float(np.bincount(val_labels, minlength=val_probs.shape[1]).max() / len(val_labels))
    if accuracy <= chance + AT_CHANCE and train_accuracy >= chance + CLIMBED:
        said.append(f"validation accuracy {accuracy:.2f} sits at chance ({chance:.2f}, the largest class's share) "
                    f"while training accuracy reached {train_accuracy:.2f}: the network fits its training images "
                    "but answers nothing on others. Try more images, fewer epochs, a smaller model or stronger "
                    "augmentation (--robust, --crop-padding).")
    if val_probs.shape[1] == 2:
        best = best_cut_accuracy(val_labels, val_probs[:, 1])
        if best >= accuracy + CUT_GAP:
            said.append(f"validation accuracy {accuracy:.2f}, though the best single cut on the same scores gives "
                        f"{best:.2f}: the ranking is learned, the verdicts' cut is not. Try --tune-threshold (the "
                        "cut chosen on validation), more epochs, or a smaller --batch-size, so that the run takes "
                        "more steps.")
    return said
