"""Every figure of the repo, used alike by the notebook and visualize.py. Each function returns a matplotlib
Figure; `save` writes one to PNG. Images are uint8 (N, 3, 32, 32) as in the cache."""
from pathlib import Path

import matplotlib.pyplot as plt  # matplotlib picks a file-only backend by itself where there is no display
import numpy as np
from matplotlib.patches import Rectangle
from sklearn.metrics import auc, roc_curve

from utils.inference.verdict import decide, verdict_title

RIGHT, WRONG = "#1a9850", "#d73027"


def _hwc(image):
    return np.asarray(image).transpose(1, 2, 0)


def image_grid(images, titles, correct=None, ncols=2, size=2.2, suptitle=None, overlays=None, boxes=None,
               edit_maps=None):
    """Images upscaled without smoothing (every pixel stays visible), a title each, and a green/red frame
    for right/wrong when `correct` is given. `overlays`: heatmaps (H, W) drawn over the images;
    `boxes`: (x, y, w, h) rectangles outlined on them (the true edit, in yellow); `edit_maps`: predicted edit
    maps (H, W) in 0..1, drawn in magenta as opaque as the pixel is probably edited."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.5)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(_hwc(images[i]), interpolation="nearest")
        if overlays is not None:
            ax.imshow(overlays[i], cmap="jet", alpha=0.45, interpolation="bilinear", vmin=0, vmax=1)
        if edit_maps is not None:
            tint = np.zeros((*np.shape(edit_maps[i]), 4))
            tint[..., [0, 2]] = 1.0
            tint[..., 3] = 0.7 * np.clip(edit_maps[i], 0, 1)
            ax.imshow(tint, interpolation="nearest")
        if boxes is not None and boxes[i] is not None:
            x, y, w, h = boxes[i]
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="yellow", linewidth=1.5))
        ax.set_title(titles[i], fontsize=8)
        if correct is not None:
            for spine in ax.spines.values():
                spine.set_edgecolor(RIGHT if correct[i] else WRONG)
                spine.set_linewidth(4)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def prediction_titles(labels, probs, classes, indices=None, threshold=None):
    """'true FAKE / pred REAL 0.93' (the probability of the predicted class) and right/wrong flags."""
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    indices = range(len(labels)) if indices is None else indices
    decisions = np.asarray(decide(probs, threshold))
    titles, correct = [], []
    for i in indices:
        k = int(decisions[i])
        titles.append(f"#{i} true {classes[labels[i]]}\npred {classes[k]} {probs[i, k]:.2f}")
        correct.append(k == labels[i])
    return titles, correct


def prediction_grid(images, labels, probs, classes, indices, ncols=2, suptitle=None, threshold=None, **kw):
    """A grid of chosen examples of a prediction run: indices into images/labels/probs."""
    indices = list(indices)
    titles, correct = prediction_titles(labels, probs, classes, indices, threshold)
    return image_grid([images[i] for i in indices], titles, correct, ncols=ncols, suptitle=suptitle, **kw)


def verdict_grid(rows, ncols=2, suptitle=None):
    """The pictures that predict() read (with keep_arrays), each titled with its verdict and flags ("possibly
    edited", "uncertain", "outside") as predict.py prints them; files it could not read are left out."""
    read = [r for r in rows if "label" in r]
    titles = [f"{Path(r['path']).name}\n{verdict_title(r)}" for r in read]
    return image_grid([np.asarray(r["view"]).transpose(2, 0, 1) for r in read], titles, ncols=ncols,
                      suptitle=suptitle)


def training_curves(history):
    """Train/validation loss and accuracy per epoch from a run's history (a list of epoch rows)."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(confusion_matrix, classes, title="confusion matrix"):
    """Counts and row percentages (the share of each true class given each label)."""
    cm = np.asarray(confusion_matrix)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(classes), 1.2 + 1.2 * len(classes)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for r in range(cm.shape[0]):
        for c in range(cm.shape[1]):
            ax.text(c, r, f"{cm[r, c]}\n{share[r, c]:.1%}", ha="center", va="center",
                    color="white" if share[r, c] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def roc_figure(labels, probs, classes):
    """ROC of the positive class (two classes) or one-vs-rest per class (more)."""
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    targets = [1] if len(classes) == 2 else range(len(classes))
    for k in targets:
        y = labels == k
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, probs[:, k])
        ax.plot(fpr, tpr, label=f"{classes[k]} (AUC {auc(fpr, tpr):.4f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save(fig, path, dpi=100):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
