"""two_part: two questions, two networks. Real vs generated is a question about the whole image; an edit is local
by definition (a region that differs from the rest of the same image). One network that pools both over the
whole image learns that whatever changes fine detail everywhere (a WebP save, sharpening, a photo unlike CIFAR)
is "edited". So:

- `real_vs_fake`: a whole-image classifier, its one logit is P(FAKE) (the robust detector's network);
- `localiser`: an edit-map network trained on REAL and FAKE images alike, whose map alone decides EDITED
  (utils.inference.verdict.edit_scores pools it; its own class head is not used for the verdict).

`forward(x)` returns the real-vs-fake logit, as every network here; `forward_with_map(x)` -> (that logit, the
localiser's map logits (N, 1, H, W)). Each part keeps the input normalisation it was trained with: the
classifier's inputs arrive normalised by the real-vs-fake part's statistics, and a per-channel affine map
(`localiser_scale`, `localiser_shift`, set by `set_normalisations` when the parts are joined) re-normalises them
for the localiser.
"""
import torch
from torch import nn


class TwoPartDetector(nn.Module):
    def __init__(self, real_vs_fake: nn.Module, localiser: nn.Module):
        super().__init__()
        self.real_vs_fake, self.localiser = real_vs_fake, localiser
        self.register_buffer("localiser_scale", torch.ones(1, 3, 1, 1))
        self.register_buffer("localiser_shift", torch.zeros(1, 3, 1, 1))

    def set_normalisations(self, mean, std, localiser_mean, localiser_std):
        """x normalised by (mean, std) -> normalised by (localiser_mean, localiser_std): same pixels, either way."""
        view = lambda v: torch.as_tensor(v, dtype=torch.float32).view(1, -1, 1, 1)  # noqa: E731
        self.localiser_scale.copy_(view(std) / view(localiser_std))
        self.localiser_shift.copy_((view(mean) - view(localiser_mean)) / view(localiser_std))

    @property
    def gradcam_layer(self) -> nn.Module:
        """Grad-CAM explains P(FAKE): the real-vs-fake part's last convolution."""
        convs = [m for m in self.real_vs_fake.modules() if isinstance(m, nn.Conv2d)]
        return convs[-1]

    def forward_with_map(self, x):
        _, edit_map = self.localiser.forward_with_map(x * self.localiser_scale.to(x.dtype)
                                                      + self.localiser_shift.to(x.dtype))
        return self.real_vs_fake(x), edit_map

    def forward(self, x):
        return self.real_vs_fake(x)
