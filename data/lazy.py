"""A module imported on first use. Importing torchvision pulls in torch._dynamo (about 1.5 s on 2 CPU cores),
and predict.py, evaluate.py and the page never call the torchvision functions the data code reaches for: with
scikit-learn gone from the metrics, their imports take 2.3-2.6 s instead of 5.5-5.9 s. (A training run imports
torch._dynamo all the same: torch.optim's first optimizer does.)"""
import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name, self._module = name, None

    def __getattr__(self, attr):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


# torchvision's tensor transforms (JPEG, blur, hue/saturation/sharpness), as `TF.gaussian_blur(...)`
TF = LazyModule("torchvision.transforms.v2.functional")
