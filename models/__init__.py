"""The networks and what wraps them: `registry` (MODELS, build_model), `classifier` (ImageClassifier: uint8 images
in, logits out, normalisation inside; `probabilities`), `losses` (the training losses and the temperature fit).
The networks themselves are one module each (model, model_2, fullres_cnn, resnet, edit_map, two_part)."""
from models.classifier import TTA_MODES, ImageClassifier, probabilities
from models.losses import edit_map_loss, fit_temperature, loss_function
from models.registry import MODELS, build_model, count_parameters, num_outputs_for

__all__ = ["MODELS", "TTA_MODES", "ImageClassifier", "build_model", "count_parameters", "edit_map_loss",
           "fit_temperature", "loss_function", "num_outputs_for", "probabilities"]
