"""A module imported on first use. Importing torchvision pulls in torch._dynamo (about 1.5 s on 2 CPU cores),
and most runs never call the torchvision functions the data code reaches for (a run that neither augments
sharpness nor draws label-neutral changes or edits): they start that much sooner."""
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
