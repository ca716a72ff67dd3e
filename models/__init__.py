"""Model registry, the input wrapper, and the one place where logits become probabilities.

Every network takes normalised float images (N, 3, S, S), S = 32 unless a run chose another, and returns logits:
one logit for two classes (the probability of the positive class, BCE-with-logits) or one per class for more
(softmax cross-entropy).
`ImageClassifier` wraps a network with the normalisation so that callers feed raw uint8 images and the
normalisation lives in exactly one place (and travels with the weights in the checkpoint).
"""
import torch
import torch.nn.functional as F
from torch import nn

from .edit_map import EditMapNet
from .fullres_cnn import BASE_WIDTHS, FullResCNN
from .model import FakeNet
from .model_2 import FakeNet2
from .resnet import ResNet
from .two_part import TwoPartDetector


def _fullres(scale: float, pool_first: bool = False):
    """fullres_cnn at `scale` times its widths."""
    widths = tuple(int(scale * w) for w in BASE_WIDTHS)
    return lambda num_outputs=1: FullResCNN(num_outputs, widths=widths, pool_first=pool_first)


MODELS = {
    "model_2": FakeNet2,         # the seed's conv-BN-pool network
    "model": FakeNet,            # the seed's pure-convolution baseline
    "fullres_cnn": FullResCNN,   # full-resolution first stage, global pooling: a quarter of model_2's FLOPs
    "fullres_cnn_wide": _fullres(1.5),
    "fullres_cnn_x2": _fullres(2),
    # sized for a GPU (bench/gpu.py): each doubling of the width bought 0.2-0.4 points there up to x8, more
    # epochs did not
    "fullres_cnn_x4": _fullres(4),
    "fullres_cnn_x8": _fullres(8),
    # BatchNorm and ReLU after each max-pooling, not before: same MACs, ~1.2x the CPU training speed for x2,
    # 1.15x the GPU's for x8
    "fullres_cnn_x2_pool_first": _fullres(2, pool_first=True),
    "fullres_cnn_x8_pool_first": _fullres(8, pool_first=True),
    "fullres_cnn_x16_pool_first": _fullres(16, pool_first=True),
    "resnet18": ResNet,  # the CIFAR ResNet-18, sized for a GPU: residual depth against fullres_cnn_x8's width
    # class logits and a per-pixel edit map (models/edit_map.py); plain, or with noise-residual input channels
    "edit_map": EditMapNet,
    "edit_map_srm": lambda num_outputs=1: EditMapNet(num_outputs, residual="srm"),
    "edit_map_bayar": lambda num_outputs=1: EditMapNet(num_outputs, residual="bayar"),
    # a quarter of edit_map_srm's widths: a localiser for images at their own size, where every pixel is
    # computed at full resolution (a 12 MP photo is 12 million of them)
    "edit_map_lite": lambda num_outputs=1: EditMapNet(num_outputs, widths=(8, 16, 32, 64), decoder_width=8,
                                                      residual="srm"),
    # the SRM one whose decoder also sees each region's deviation from the rest of its image (a local anomaly)
    "edit_map_srm_anomaly": lambda num_outputs=1: EditMapNet(num_outputs, residual="srm", anomaly=True),
    # the default detector: P(FAKE) from the robust real-vs-fake network, EDITED from a separate localiser's map
    # (models/two_part.py); built by joining two trained runs (utils/two_part.py), never trained as one
    "two_part": lambda num_outputs=1: TwoPartDetector(_fullres(2, pool_first=True)(num_outputs),
                                                      EditMapNet(3, residual="srm")),
}


# Test-time augmentation: the views averaged in eval mode (a model setting, saved in the checkpoint).
#   flip: the image and its mirror image;
#   flip-shift: also the image moved one pixel down-right and one up-left (reflect-padded) and their mirrors,
#   the shifted four weighted as much as the unshifted two (airbench's weighting): 6 forward passes, not 2.
TTA_MODES = ("none", "flip", "flip-shift")


def num_outputs_for(num_classes: int) -> int:
    return 1 if num_classes == 2 else num_classes


def build_model(name: str, num_classes: int = 2) -> nn.Module:
    """A bare network by registry name, with the right number of outputs for `num_classes`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_outputs=num_outputs_for(num_classes))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class ImageClassifier(nn.Module):
    """uint8 (or 0..1 float) NCHW images -> logits; normalisation is part of the model.

    Weights and activations are kept channels-last: oneDNN's CPU convolutions (and cuDNN's with AMP) run
    faster that way (measured here for model_2: about 1.3x training, 1.5-2x inference on 2 CPU cores).
    """

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        # calibration temperature fitted on validation after training (1 = none); kept in the checkpoint's
        # metadata rather than the state dict, so checkpoints written before calibration still load
        self.register_buffer("temperature", torch.ones(()), persistent=False)
        self.tta = "none"  # views averaged in eval mode, one of TTA_MODES

    @property
    def tta(self) -> str:
        return self._tta

    @tta.setter
    def tta(self, mode: str):
        if mode not in TTA_MODES:
            raise ValueError(f"unknown test-time augmentation {mode!r}; use one of {', '.join(TTA_MODES)}")
        self._tta = mode

    @property
    def has_edit_map(self) -> bool:
        """Whether the network also outputs a per-pixel edit map (`forward(..., with_map=True)`)."""
        return hasattr(self.net, "forward_with_map")

    def forward(self, images, tta=None, with_map=False):
        """`tta`: the views to average in eval mode, for this call only (default: the model's own setting).
        `with_map` (networks with an edit map): -> (logits, map logits (N, 1, H, W)); the map averages the
        image and its mirror image under any TTA (the shifted views are for the verdict only)."""
        tta = self.tta if tta is None else tta
        x = images.float()
        if images.dtype == torch.uint8:
            x = x / 255.0
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        net = self.net.forward_with_map if with_map else self.net
        logits, edit_map = net(x) if with_map else (net(x), None)
        if tta != "none" and not self.training:
            if with_map:
                flipped, flipped_map = net(x.flip(3))
                edit_map = (edit_map + flipped_map.flip(3)) / 2
            else:
                flipped = net(x.flip(3))
            logits = (logits + flipped) / 2
            if tta == "flip-shift":
                padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
                shifted = [v.contiguous(memory_format=torch.channels_last)
                           for v in (padded[:, :, 2:, 2:], padded[:, :, :-2, :-2])]
                logits = (logits + sum(self.net(v) + self.net(v.flip(3)) for v in shifted) / 4) / 2
        logits = logits / self.temperature
        return (logits, edit_map) if with_map else logits


def edit_map_loss(map_logits, masks):
    """Per-pixel BCE plus soft Dice over the whole batch (Dice per image is undefined on the unedited images,
    whose masks are empty, and those must learn an empty map too)."""
    logits = map_logits.squeeze(1).float()
    target = masks.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(N, C) class probabilities from logits; for one logit, column 1 is the positive class."""
    if logits.ndim == 2 and logits.shape[1] == 1:
        p = torch.sigmoid(logits.float())
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)


def decide(probs, threshold=None):
    """Class indices from (N, C) probabilities: argmax, or for two classes P(positive) >= threshold when a
    threshold was tuned on validation (it is stored in the checkpoint)."""
    if not isinstance(probs, torch.Tensor):
        probs = torch.as_tensor(probs)
    if threshold is not None and probs.shape[1] == 2:
        return (probs[:, 1] >= threshold).long()
    return probs.argmax(1)


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
