"""What a training run is asked to do: `TrainConfig`, the named recipes, and `make_config`.

A recipe is a named set of defaults (model, data, schedule, augmentation); explicit arguments override it.
Recipes are named here only: train.py --recipe NAME, the bench, the notebook and the docs use these names.
"""
import dataclasses
from dataclasses import dataclass

from data.degradations import opt_in_kinds
from data.images import RESIZE_MODES
from data.synthetic_edits import KINDS as EDIT_KINDS, edit_classes_from, kinds_from


@dataclass
class TrainConfig:
    model: str = "model_2"
    train_path: str = "train-medium"
    test_path: str = None          # None: the seed's pairing (train* -> test); "" or "none": no test report
    recipe: str = "default"
    epochs: int = 8
    budget_minutes: float = 0.0    # > 0: as many epochs as fit this much wall time here (measured; overrides epochs)
    batch_size: int = 128
    optimizer: str = "adamw"       # adamw | adam (the seed's)
    lr: float = 1e-3
    weight_decay: float = 5e-2
    schedule: str = "onecycle"     # onecycle | cosine | none
    hflip: bool = True
    vflip: bool = False
    crop_padding: int = 0
    sharpness: list = None         # [factor, probability], the seed's RandomAdjustSharpness
    robust: float = 0.0            # robust training: share of each batch hit by each trained degradation
    robust_extra: str = ""         # kept-aside degradations this run also draws (data.degradations.opt_in_kinds)
    synthetic_edits: float = 0.0   # share of the REAL images of each batch given a local edit and labelled EDITED
    edit_kinds: str = ",".join(EDIT_KINDS)  # comma-separated kinds for synthetic_edits, or "all"
    edit_classes: str = "REAL"     # the classes synthetic edits hit: REAL, or REAL,FAKE for an edit localiser
    label_smoothing: float = 0.0
    ema: float = 0.0               # decay of an exponential moving average of the weights (0: off); the average is validated and saved
    whiten: bool = False           # start the first convolution as +- the training patches' whitening filters
    tta: str = "none"              # test-time augmentation in evaluation: none | flip | flip-shift (models.TTA_MODES)
    compile: bool = False          # torch.compile the training forward/backward (compile time reported apart)
    precision: str = "auto"        # auto | fp32 | bf16: AMP on CUDA; on a CPU bf16 only where it runs natively and measures faster
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    out: str = None                # run folder; default runs/<model>-<train split>-<time>
    resume: bool = False
    image_size: int = 32           # the side of the model's square view (data/images.py)
    resize: str = "shrink"         # how an image of another size gets there: shrink (CIFAKE's) | crop (its own pixels)
    train_crop: int = 0            # > 0: training batches are random M x M windows of each N x N view (validation,
                                   # evaluation and prediction see the whole view): a step of 64 px windows of 256 px
                                   # crops costs a sixteenth, so a CPU run sees 16x the edits at the same pixels
    max_train_images: int = 0      # 0: all; else a seeded subset of the training part (quick experiments)
    max_val_images: int = 0        # 0: all; else a seeded subset of the validation part (sized to what it decides)
    outside_fit_images: int = 20000  # training images the outside-what-I-know score is fitted on (utils.outside)
    balance: bool = False          # weight the loss inversely to class frequency (EDITED is a minority)
    tune_threshold: bool = False   # two classes: pick the decision threshold with the best validation balanced accuracy
    sync_bn: bool = False          # torchrun on CUDA: BatchNorm statistics over all ranks' batches
    calibrate: bool = True         # fit a temperature on the validation split so that probabilities are calibrated
    progress: bool = True


# The flags every strong run shares: a higher peak rate, a moving average of the weights, mirror TTA
# (chosen on validation: docs/results.md, "Recipe").
_STRONG = dict(train_path="train", lr=3e-3, ema=0.999, tta="flip")

RECIPES = {
    # chosen on the validation split of train-medium (docs/results.md, "How the defaults were chosen")
    "default": {},
    # the seed notebook: Adam 1e-3, batch 64, no schedule, h+v flips and sharpness jitter, 20 epochs
    "seed": dict(optimizer="adam", epochs=20, batch_size=64, lr=1e-3, weight_decay=0.0, schedule="none",
                 hflip=True, vflip=True, crop_padding=0, sharpness=[1.2, 0.3]),
    # model_2, one pass over 8.5k images of train in batches of 64: the time to the seed's 86.87% (bench/pipeline.py)
    "one-pass": dict(model="model_2", train_path="train", epochs=1, max_train_images=8500, batch_size=64, lr=3e-3,
                     weight_decay=5e-4,
                     # one epoch: validation only fits the temperature, and the outside score's Gaussians
                     # (at most 256 features a group) need a few thousand images, not 10,000 and 8,500
                     max_val_images=2000, outside_fit_images=1500),
    # the time-to-93% run: fullres_cnn, 2 epochs, the first convolution started whitened (+0.4-0.6 point after
    # 2 epochs on 3 seeds, nothing after 21, so only here)
    "fast": dict(model="fullres_cnn", train_path="train", epochs=2, lr=3e-3, whiten=True),
    # the time-to-93% run on any CPU: `fast` in one learning-rate cycle over 50k images (93.7 / 93.9% on
    # validation, seeds 0/1; 37 s of fp32 training on 2 AVX2 cores, where one epoch of `fast` takes ~65 s)
    "sprint": dict(model="fullres_cnn", train_path="train", epochs=1, max_train_images=50000, lr=3e-3, whiten=True),
    # the most accurate CPU run: the pool-first x2, as many epochs as fit 18 minutes
    "best": dict(model="fullres_cnn_x2_pool_first", budget_minutes=18, **_STRONG),
    # the same with robust training: JPEG, resize and blur each on 40% of every batch (0.4 rather than 0.3: on
    # validation, resized images 95.31% against 94.54% for 0.4 points of clean accuracy)
    "robust": dict(model="fullres_cnn_x2_pool_first", budget_minutes=18, robust=0.4, **_STRONG),
    # REAL / EDITED / FAKE with an edit map, on all of train, the shipped EDITED and synthetic edits of half the
    # REAL photos of every batch (bench/edits.py measures it; the model chosen on validation, docs/results.md).
    # Every class, edited or not, then meets the same label-neutral changes (robust 0.25 of each trained kind,
    # after the edit): without them "no JPEG-75 history" was learned as EDITED (bench/bias.py)
    "edits": {**_STRONG, **dict(model="edit_map_srm", train_path="train-edits", test_path="test-3class",
                                synthetic_edits=0.5, robust=0.25, budget_minutes=20)},
    # the default detector's edit localiser (utils/two_part.py): the edits recipe's network, but every family of
    # edit drawn on REAL and FAKE images alike, so its map answers "was a region changed" and never "is this
    # a photograph"; the verdict comes from the map, P(FAKE) from the robust detector
    "localiser": {**_STRONG, **dict(model="edit_map_srm", train_path="train-edits", test_path="test-3class",
                                    synthetic_edits=0.5, edit_kinds="all", edit_classes="REAL,FAKE", robust=0.25,
                                    robust_extra="sharpen,webp,palette", budget_minutes=40)},
    # bench/gpu.py's run on a GPU: the model that validated best on an H200 (98.58%; x16 and resnet18 lower),
    # with the regularisers that validated best for fullres_cnn_x4 there (98.21% against 98.15% without)
    "gpu": dict(model="fullres_cnn_x8_pool_first", epochs=30, batch_size=512, robust=0.2, label_smoothing=0.1,
                **_STRONG),
}


def make_config(recipe="default", **overrides) -> TrainConfig:
    """The recipe's defaults with `overrides` on top (None values are ignored, as an unset flag)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = set(overrides) - known
    if bad:
        raise TypeError(f"unknown training option(s): {', '.join(sorted(bad))}")
    values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}}
    config = TrainConfig(recipe=recipe, **values)
    kinds_from(config.edit_kinds)  # a misspelt kind fails here, not an epoch into the run
    edit_classes_from(config.edit_classes)
    opt_in_kinds(config.robust_extra)
    if config.resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {config.resize!r}; use one of {', '.join(RESIZE_MODES)}")
    if config.image_size < 8:
        raise ValueError(f"image size {config.image_size}: too small for any model here (at least 8 pixels)")
    if config.train_crop and not 8 <= config.train_crop <= config.image_size:
        raise ValueError(f"training windows of {config.train_crop} px: use 8 to the image size ({config.image_size})")
    return config

