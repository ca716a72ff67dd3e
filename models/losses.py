"""Training losses, and the temperature that calibrates a trained model's probabilities."""
import torch
import torch.nn.functional as F
from torch import nn


def edit_map_loss(map_logits, masks):
    """Per-pixel BCE plus soft Dice over the whole batch (Dice per image is undefined on the unedited images,
    whose masks are empty, and those must learn an empty map too)."""
    logits = map_logits.squeeze(1).float()
    target = masks.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def fit_temperature(logits: torch.Tensor, labels) -> float:
    """Temperature scaling (Guo et al., 2017): the T > 0 minimising the NLL of logits / T on held-out data.
    One scalar, so the ranking (accuracy, ROC-AUC) is untouched and only the confidence changes."""
    logits = logits.detach().float()
    labels = torch.as_tensor(labels)
    nll = loss_function(2 if logits.shape[1] == 1 else logits.shape[1])
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nll(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    # bounded: a validation set the model separates perfectly drives T towards 0 (certainty nothing supports)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def loss_function(num_classes: int, class_counts=None, label_smoothing=0.0):
    """BCE-with-logits for two classes (as the seed's BCE, but stable), cross-entropy for more.
    With `class_counts` the classes are weighted inversely to their frequency (for a minority like EDITED);
    `label_smoothing` moves the targets that far towards uniform (0 -> eps/2 and 1 -> 1 - eps/2 for BCE)."""
    counts = None if class_counts is None else torch.as_tensor(class_counts, dtype=torch.float32).clamp_min(1)
    if num_classes == 2:
        pos_weight = None if counts is None else counts[0] / counts[1]
        bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        return lambda logits, labels: bce(logits.squeeze(1).float(),
                                          labels.float() * (1 - label_smoothing) + label_smoothing / 2)
    weight = None if counts is None else counts.sum() / (len(counts) * counts)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
