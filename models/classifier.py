"""`ImageClassifier`: a network wrapped with its input normalisation, test-time augmentation and calibration
temperature, so that callers feed raw uint8 images and the normalisation travels with the weights; and
`probabilities`, the one place logits become probabilities."""
import torch
import torch.nn.functional as F
from torch import nn

# Test-time augmentation: the views averaged in eval mode (a model setting, saved in the checkpoint).
#   flip: the image and its mirror image;
#   flip-shift: also the image moved one pixel down-right and one up-left (reflect-padded) and their mirrors,
#   the shifted four weighted as much as the unshifted two (airbench's weighting): 6 forward passes, not 2.
TTA_MODES = ("none", "flip", "flip-shift")


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


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(N, C) class probabilities from logits; for one logit, column 1 is the positive class."""
    if logits.ndim == 2 and logits.shape[1] == 1:
        p = torch.sigmoid(logits.float())
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)
