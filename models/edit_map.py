"""edit_map: a classifier that also says where an image was edited (one logit per pixel at 32x32).

The encoder is fullres_cnn's pool-first trunk (four stages, 32x32 down to 4x4). Local edits live in single
pixels and small patches, so a light hypercolumn decoder brings every stage back to full resolution: each
stage's output is projected to a few channels with a 1x1 convolution, upsampled to 32x32 and summed, then two
3x3 convolutions and a 1x1 give the map. The class head sees the encoder's global average and the decoder's
global maximum (an edit anywhere is evidence for EDITED), so the map's evidence reaches the verdict.

Forensics networks often let the first layer see noise residuals rather than content (ManTra-Net, MVSS-Net):
- `residual="srm"`: three fixed SRM high-pass filters (Fridrich & Kodovsky) on each colour channel, 9 extra
  input channels;
- `residual="bayar"`: a learned 5x5 "constrained" convolution (Bayar & Stamm, 2018) whose kernels predict the
  centre pixel from its neighbours (centre weight -1, the others summing to 1), 3 extra channels.
Edits a detector never saw are the hard part. ManTra-Net finds an edit as a local anomaly: features that stand
out against the rest of the same image. `anomaly=True` gives the decoder that comparison as well: the hypercolumn
z-scored over the image (each channel's deviation from the image's own mean, in its own standard deviations) and
that deviation averaged over 7x7 windows (a region against the image, not a single pixel), both as magnitudes.
`forward(x)` returns the class logits, as every network here; `forward_with_map(x)` -> (logits, map logits
(N, 1, H, W)).
"""
import torch
import torch.nn.functional as F
from torch import nn

from .fullres_cnn import conv_bn_relu

SRM_KERNELS = torch.tensor([
    [[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]],          # / 4
    [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]],  # / 12
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],              # / 2
], dtype=torch.float32) / torch.tensor([4.0, 12.0, 2.0]).view(3, 1, 1)


class SRMResiduals(nn.Module):
    """The three SRM filters on each channel: (N, 3, H, W) -> (N, 9, H, W). Fixed, not trained."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", SRM_KERNELS.repeat(3, 1, 1).unsqueeze(1))  # (9, 1, 5, 5), grouped by channel

    def forward(self, x):
        return F.conv2d(x, self.weight.to(x.dtype), padding=2, groups=3)


class ConstrainedConv(nn.Module):
    """Bayar & Stamm's constrained convolution, with the constraint built into the forward pass (so no
    projection step after the optimizer): each kernel's centre is -1 and its other weights sum to 1."""

    def __init__(self, channels_in=3, channels_out=3, size=5):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(channels_out, channels_in, size, size))  # kept positive by abs()
        centre = torch.zeros(1, 1, size, size)
        centre[..., size // 2, size // 2] = 1
        self.register_buffer("centre", centre)

    def forward(self, x):
        w = self.weight.abs() * (1 - self.centre)
        w = w / w.sum((2, 3), keepdim=True).clamp(min=1e-6) - self.centre  # per 2-D kernel, as Bayar & Stamm
        return F.conv2d(x, w.to(x.dtype), padding=self.weight.shape[-1] // 2)


class EditMapNet(nn.Module):
    def __init__(self, num_outputs: int = 1, widths=(32, 64, 128, 256), decoder_width=32, residual=None,
                 anomaly=False):
        super().__init__()
        a, b, c, d = widths
        self.residual = {"srm": SRMResiduals, "bayar": ConstrainedConv, None: None}[residual]
        self.residual = self.residual() if self.residual else None
        extra = {"srm": 9, "bayar": 3, None: 0}[residual]
        self.stages = nn.ModuleList([
            conv_bn_relu(3 + extra, a),                                  # 32x32
            nn.Sequential(conv_bn_relu(a, a, pool=True), conv_bn_relu(a, b)),  # 16x16
            nn.Sequential(conv_bn_relu(b, b, pool=True), conv_bn_relu(b, c)),  # 8x8
            nn.Sequential(conv_bn_relu(c, c, pool=True), conv_bn_relu(c, d)),  # 4x4
        ])
        self.lateral = nn.ModuleList([nn.Conv2d(w, decoder_width, 1, bias=False) for w in widths])
        self.anomaly = anomaly
        decoder_in = decoder_width * (3 if anomaly else 1)
        self.decoder = nn.Sequential(nn.BatchNorm2d(decoder_in), nn.ReLU(inplace=True),
                                     conv_bn_relu(decoder_in, decoder_width),
                                     conv_bn_relu(decoder_width, decoder_width))
        self.map_head = nn.Conv2d(decoder_width, 1, 1)
        self.head = nn.Linear(d + decoder_width, num_outputs)

    @property
    def gradcam_layer(self) -> nn.Module:
        """The encoder's last convolution: the one Grad-CAM explains the verdict by (the map head comes after)."""
        return self.stages[-1][-1][0]

    def forward_with_map(self, x):
        if self.residual is not None:
            x = torch.cat([x, self.residual(x)], 1)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        size = features[0].shape[-2:]
        summed = sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False) if i else lat(f)
                     for i, (lat, f) in enumerate(zip(self.lateral, features)))
        if self.anomaly:
            deviation = F.instance_norm(summed)  # per image and channel: (feature - image mean) / image std
            regional = F.avg_pool2d(deviation, 7, stride=1, padding=3, count_include_pad=False)
            # magnitudes: a region may stand out above or below the image's mean, and the decoder starts with a ReLU
            summed = torch.cat([summed, deviation.abs(), regional.abs()], 1)
        decoded = self.decoder(summed)
        pooled = torch.cat([features[-1].mean((2, 3)), decoded.amax((2, 3))], 1)
        return self.head(pooled), self.map_head(decoded)

    def forward(self, x):
        return self.forward_with_map(x)[0]
