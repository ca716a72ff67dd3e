"""What a training run is asked to do: `TrainConfig`, the named recipes, and `make_config`.

A recipe is a named set of defaults (model, data, schedule, augmentation); explicit arguments override it.
Recipes are named here only: train.py --recipe NAME, the bench, the notebook and the docs use these names.
"""
import argparse
import dataclasses
from dataclasses import dataclass

from data.degradations import opt_in_kinds
from data.images import RESIZE_MODES, default_resize
from data.synthetic_edits import KINDS as EDIT_KINDS
from data.synthetic_edits import edit_classes_from, kinds_from
from models import MODELS, TTA_MODES


def option(default, help, flag="value", **argparse_kwargs):
    """A TrainConfig field with its one help text, which train.py's flag shows (`add_flags`). `flag`: how the command
    line sets it: value (--name VALUE), switch (--name / --no-name), on (--name), off (--no-name), or none (no
    flag; a recipe's setting). A default that is a list is given as a factory."""
    metadata = {"help": help, "flag": flag, **argparse_kwargs}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    model: str = option("model_2", "registered model (models/registry.py)", choices=sorted(MODELS))
    train_path: str = option("train-medium", "split name under images/ (train, train-medium, train-small, "
                             "train-real-edited, ...) or a folder of <CLASS>/<images>")
    test_path: str = option(None, "split or folder reported after training; default: the split paired with a "
                            "shipped training split (train* -> test, train-real-edited -> test-real-edited, ...), "
                            "none for other folders; 'none' to skip")
    recipe: str = option("default", "named defaults (utils/training/config.py RECIPES, each described there); "
                         "every other flag overrides them")
    epochs: int = option(8, "passes over the training part")
    budget_minutes: float = option(0.0, "train for as many epochs as fit M minutes of wall time on this machine "
                                   "(measured from a few steps and a timed validation slice; replaces --epochs; "
                                   "0: off)", metavar="M")
    batch_size: int = option(128, "images a training step (per process under torchrun)")
    optimizer: str = option("adamw", "adamw, or adam (the seed's)", choices=["adamw", "adam"])
    lr: float = option(1e-3, "peak learning rate")
    weight_decay: float = option(5e-2, "AdamW's decoupled weight decay (Adam's L2 penalty)")
    schedule: str = option("onecycle", "learning-rate schedule", choices=["onecycle", "cosine", "none"])
    hflip: bool = option(True, "random horizontal flips", flag="switch")
    vflip: bool = option(False, "random vertical flips", flag="switch")
    crop_padding: int = option(0, "pad-and-random-crop by this many pixels (0: off)")
    sharpness: list = option(None, "[factor, probability]: the seed's RandomAdjustSharpness", flag="none")
    robust: float = option(0.0, "robust training: each label-neutral change with a training range in "
                           "data/degradations.py (JPEG q 50-95, down/up resizing, blur, Gaussian noise, a gamma "
                           "curve) hits a share P of every batch, every class alike (0: off; e.g. 0.3)", metavar="P")
    robust_extra: str = option("", "with --robust, also draw these kept-aside changes (sharpen, webp, palette); the "
                               "bias table then marks them trained for this run", metavar="K1,K2")
    synthetic_edits: float = option(0.0, "edit a share P of the REAL images of every batch on the fly "
                                    "(data/synthetic_edits.py) and label them EDITED; EDITED joins the classes if the "
                                    "folder has none, and the validation part gets the same share edited once, with "
                                    "a fixed seed (0: off)", metavar="P")
    edit_kinds: str = option(",".join(EDIT_KINDS), "comma-separated kinds for --synthetic-edits, or all (the 17 "
                             "families)", metavar="K1,K2")
    edit_classes: str = option("REAL", "the classes --synthetic-edits hits: REAL, or REAL,FAKE for an edit localiser "
                               "whose map must not tell real from generated", metavar="C1,C2")
    edits_label_neutral: bool = option(False, "edits never change a class: --synthetic-edits keep their image's "
                                       "class and a folder's EDITED images count as REAL, their sources' class (a "
                                       "real-vs-fake network that an edit does not move)", flag="on")
    own_edits_repeat: int = option(1, "each of the training folder's own EDITED images appears this many times a "
                                   "pass (the user's edits, a few thousand among the synthetic ones)", metavar="K")
    other_photos: str = option("", "a split or folder of unedited photographs from other sources (data/other_photos.py "
                               "makes `other-photos`), added to the training part as REAL with nothing edited, never "
                               "to validation: an edit localiser learns that a photograph made elsewhere is not "
                               "edited everywhere; added after --max-train-images, and counted by --balance "
                               "('': none)", metavar="SPLIT")
    label_smoothing: float = option(0.0, "move targets this far towards uniform (0: off)")
    ema: float = option(0.0, "validate and save an exponential moving average of the weights with this decay "
                        "(e.g. 0.999; 0: off)", metavar="DECAY")
    whiten: bool = option(False, "start the first convolution as +- the whitening filters of the training images' "
                          "patches (airbench's whitening layer, kept trainable)", flag="switch")
    tta: str = option("none", "test-time augmentation, stored in the checkpoint so evaluate/predict/export use it: "
                      "none; flip: average the logits of each image and its mirror image; flip-shift: also "
                      "one-pixel shifts and their mirrors (6 passes)", choices=list(TTA_MODES))
    compile: bool = option(False, "torch.compile the training step (compile time reported apart)", flag="on")
    precision: str = option("auto", "auto: AMP on CUDA; on a CPU bf16 only where it runs natively and measures "
                            "faster", choices=["auto", "fp32", "bf16"])
    val_fraction: float = option(0.1, "the seeded validation part of the training folder")
    seed: int = option(0, "seed for the split, initialisation and batch order")
    device: str = option("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, ...")
    out: str = option(None, "run folder (default runs/<model>-<train split>-<time>)")
    init_from: str = option(None, "start from this checkpoint's weights and normalisation (the same model and "
                            "classes): a fine-tune", metavar="CHECKPOINT")
    resume: bool = option(False, "continue the run in --out from its last.pt", flag="on")
    image_size: int = option(32, "the side of the model's square view of an image (32: CIFAKE's size)", metavar="N")
    resize: str = option(None, "how an image of another size is brought to N: crop (the centred N x N of its own "
                         "pixels, never resampled; an image smaller than N is skipped with the reason) or shrink "
                         "(the centred square resized, as CIFAKE's detectors do); None: crop, except at 32 (CIFAKE's "
                         "size), where shrink", choices=list(RESIZE_MODES))
    train_crop: int = option(0, "train on a random M x M window of each N x N view, at its own pixels (edits drawn "
                             "on the window); validation, evaluation and prediction see the whole view (0: off)",
                             metavar="M")
    max_train_images: int = option(0, "train on a seeded subset of this many images (0: all)")
    max_val_images: int = option(0, "validate on a seeded subset of this many of the validation part (0: all)")
    outside_fit_images: int = option(20000, "training images the outside-what-I-know score is fitted on "
                                     "(utils/inference/outside.py)")
    balance: bool = option(False, "weight the loss inversely to class frequency (EDITED is a minority)", flag="on")
    tune_threshold: bool = option(False, "two classes: choose the decision threshold with the best validation "
                                  "balanced accuracy (stored in the checkpoint)", flag="switch")
    sync_bn: bool = option(False, "under torchrun on CUDA: BatchNorm statistics over every rank's batch", flag="on")
    calibrate: bool = option(True, "fit a temperature on the validation split so that probabilities are calibrated "
                             "(--no-calibrate skips it)", flag="off")
    progress: bool = option(True, "progress bars (--no-progress hides them)", flag="off")

    def __post_init__(self):
        if self.resize is None:  # the run's view size decides (data.images.default_resize)
            self.resize = default_resize(self.image_size)


def add_flags(parser):
    """One flag per TrainConfig field that has one, with the field's help text and its default shown; every flag's
    default is None, so that an unset flag leaves the recipe's value (make_config)."""
    for f in dataclasses.fields(TrainConfig):
        meta = dict(f.metadata)
        flag, help = meta.pop("flag"), meta.pop("help")
        name = "--" + f.name.replace("_", "-")
        if f.name == "recipe":
            meta["choices"] = list(RECIPES)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = f"{help} (default {default})".replace("%", "%%")
        if flag == "value":
            parser.add_argument(name, type=type(default) if default is not None else str, help=shown, **meta)
        elif flag == "switch":
            parser.add_argument(name, action=argparse.BooleanOptionalAction, default=None, help=shown)
        elif flag == "on":
            parser.add_argument(name, action="store_true", default=None, help=help)
        elif flag == "off":
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", default=None,
                                help=help)


# The flags every strong run shares: a higher peak rate, a moving average of the weights, mirror TTA
# (chosen on validation: docs/results.md, "Recipe").
_STRONG = dict(train_path="train", lr=3e-3, ema=0.999, tta="flip")

# robust training: JPEG, resize and blur each on 40% of every batch (0.4 rather than 0.3: on validation, resized
# images 95.31% against 94.54% for 0.4 points of clean accuracy)
RECIPES_ROBUST = dict(model="fullres_cnn_x2_pool_first", budget_minutes=18, robust=0.4, **_STRONG)

# two_part's edit localiser (shipping/two_part.py): the edits recipe's network, but every family of
# edit drawn on REAL and FAKE images alike, so its map answers "was a region changed" and never "is this a
# photograph"; the verdict comes from the map, P(FAKE) from the robust detector
RECIPES_LOCALISER = {**_STRONG, **dict(model="edit_map_srm", train_path="train-edits", test_path="test-3class",
                                       synthetic_edits=0.5, edit_kinds="all", edit_classes="REAL,FAKE", robust=0.25,
                                       robust_extra="sharpen,webp,palette", budget_minutes=40)}

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
    # the same with robust training
    "robust": RECIPES_ROBUST,
    # REAL / EDITED / FAKE with an edit map, on all of train, the shipped EDITED and synthetic edits of half the
    # REAL photos of every batch (bench/edits.py measures it; the model chosen on validation, docs/results.md).
    # Every class, edited or not, then meets the same label-neutral changes (robust 0.25 of each trained kind,
    # after the edit): without them "no JPEG-75 history" was learned as EDITED (bench/bias.py)
    "edits": {**_STRONG, **dict(model="edit_map_srm", train_path="train-edits", test_path="test-3class",
                                synthetic_edits=0.5, robust=0.25, budget_minutes=20)},
    # two_part_edits's real-vs-fake part: the shipped robust detector fine-tuned on train and the shipped
    # EDITED images with every edit (the 17 families, on REAL and FAKE alike, and the shipped EDITED counted as
    # the REAL photos they were made from) drawn as label-neutral, so that an edit does not read as "generated";
    # train-edits split as the localiser's run splits it, so neither part sees the held-out EDITED images
    "real_vs_fake_edits": {**RECIPES_ROBUST, **dict(train_path="train-edits", test_path="test", synthetic_edits=0.2,
                                                    edit_kinds="all", edit_classes="REAL,FAKE",
                                                    edits_label_neutral=True, lr=3e-4, budget_minutes=0, epochs=6,
                                                    tune_threshold=True, init_from="weights/real_vs_fake_robust.pt")},
    "localiser": RECIPES_LOCALISER,
    # two_part_edits's localiser: two_part's, fine-tuned with each of the folder's own EDITED images (the
    # user's edits: faint blurred regions, salt-and-pepper over the whole image) eight times a pass, and unedited
    # photographs from elsewhere (other-photos), so that salt-and-pepper is not learned as "unlike CIFAKE"
    "localiser_own_edits": {**RECIPES_LOCALISER, **dict(own_edits_repeat=8, init_from="weights/two_part.pt", lr=1e-3,
                                                        epochs=2, budget_minutes=0, other_photos="other-photos")},
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

