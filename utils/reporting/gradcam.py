"""Grad-CAM heatmaps for any registered model, computed by captum (LayerGradCam) rather than hand-written
hooks: captum is maintained with PyTorch and needs nothing beyond it (pytorch-grad-cam pulls in OpenCV)."""
import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from models import ImageClassifier
from utils.inference.verdict import decide


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM explains: the one a network names as `gradcam_layer` (an edit-map network's last
    convolution makes the map, not the verdict), else the last Conv2d."""
    named = [m.gradcam_layer for m in model.modules() if hasattr(m, "gradcam_layer")]
    if named:
        return named[0]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a model with at least one Conv2d layer")
    return convs[-1]


class _ClassLogits(nn.Module):
    """One logit per class, so that a single-logit binary model can be explained for either class. The plain
    view only: with test-time augmentation the layer would record the last augmented view (a mirrored image),
    and its map would be mirrored too."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x, tta="none") if isinstance(self.model, ImageClassifier) else self.model(x)
        return torch.cat([-logits, logits], dim=1) if logits.shape[1] == 1 else logits


def gradcam(model: nn.Module, images, target=None) -> tuple:
    """-> (heatmaps (N, H, W) in 0..1, the explained class per image: by default the predicted one), computed
    on the model's own device (it is not moved)."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(images)).to(device)
    wrapped = _ClassLogits(model)
    with torch.no_grad():
        predicted = decide(wrapped(x))
    target = predicted if target is None else torch.as_tensor(target, device=device).expand(len(x))
    layer_cam = LayerGradCam(wrapped, last_conv_layer(model))
    with torch.enable_grad():
        cam = layer_cam.attribute(x.float() if x.dtype != torch.uint8 else x, target=target,
                                  relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
    cam = cam.detach().squeeze(1)
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).cpu().numpy(), target.cpu().numpy()
