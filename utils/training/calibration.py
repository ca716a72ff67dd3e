"""After training, on the validation split: the temperature that calibrates the probabilities and, for two
classes when asked, the decision threshold. Also the refit `evaluate.py --tta` needs when it scores a
checkpoint with views other than those its temperature was fitted for."""
import numpy as np

from data import DataError
from models import fit_temperature, probabilities
from utils.inference.evaluation import validation_images
from utils.inference.metrics import classification_metrics, expected_calibration_error
from utils.inference.scoring import run_model


def tune_threshold(labels, probs) -> float:
    """The P(positive) cut with the best balanced accuracy on these (validation) labels."""
    labels = np.asarray(labels)
    candidates = np.unique(np.concatenate([[0.5], np.quantile(probs[:, 1], np.linspace(0.01, 0.99, 197))]))
    scores = [classification_metrics(labels, probs, ["n", "p"], t)["balanced_accuracy"] for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def calibrate(ck: dict, val_logits, val_labels, config, log):
    """Set the checkpoint dict's `temperature` (config.calibrate) and `threshold` (config.tune_threshold) from
    the validation logits of its model at temperature 1; the ECE before and after go into its val_metrics."""
    classes = ck["classes"]
    if config.calibrate:
        before = expected_calibration_error(val_labels, probabilities(val_logits).numpy())
        ck["temperature"] = fit_temperature(val_logits, val_labels)
        val_logits = val_logits / ck["temperature"]
        after = expected_calibration_error(val_labels, probabilities(val_logits).numpy())
        ck["val_metrics"].update(ece_uncalibrated=before, ece=after)
        log(f"temperature {ck['temperature']:.3f} fitted on validation: ECE {before:.4f} -> {after:.4f}")
    if config.tune_threshold:
        ck["threshold"] = tune_threshold(val_labels, probabilities(val_logits).numpy())
        log(f"decision threshold tuned on validation: P({classes[1]}) >= {ck['threshold']:.4f}")


def refit_temperature(model, ck: dict, device="cpu") -> str:
    """The model is about to score with test-time views (model.tta) other than those the checkpoint's
    temperature was fitted for: fit it again on the checkpoint's validation split, or, where that split is not
    at hand, drop it (temperature 1). Sets model.temperature; returns what was done, for the user."""
    if model.tta == ck["tta"] or not ck["config"]["calibrate"]:
        return ""
    model.temperature.fill_(1.0)
    try:
        images, labels = validation_images(ck)
    except DataError as e:
        return (f"scores NOT calibrated: the temperature was fitted for tta {ck['tta']}, and the validation "
                f"split to refit it for {model.tta} is not at hand ({e})")
    model.temperature.fill_(fit_temperature(run_model(model, images, device=device), labels))
    return (f"temperature refitted for tta {model.tta} on the checkpoint's validation split ({len(labels)} images): "
            f"{float(model.temperature):.3f} (was {ck['temperature']:.3f} for {ck['tta']})")
