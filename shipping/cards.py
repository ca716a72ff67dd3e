"""The shipped detectors' figures in the docs, made from their cards (weights/<name>.json, which `ship()` writes
when it measures them), so that README.md and docs/model-card.md cannot say otherwise than the cards.

A doc holds each generated table between `<!-- cards:NAME -->` and `<!-- /cards:NAME -->`; `python ship.py --docs`
rewrites those blocks from the cards, and tests/test_shipped_weights.py fails when a block differs from what the
cards make.
"""
import json
import re
from pathlib import Path

from utils.inference.checkpoint import DEFAULT_DETECTOR, WEIGHTS_DIR

REPO = Path(__file__).resolve().parents[1]
DETECTOR_ORDER = ("two_part", "three_class", "real_vs_fake_robust")  # after the default
DOCS = ("README.md", "docs/model-card.md")
BLOCK = re.compile(r"(<!-- cards:(\w+) -->\n)(.*?)(<!-- /cards:\2 -->)", re.S)


def load_cards(weights_dir=WEIGHTS_DIR) -> dict:
    """{name: card} of every shipped detector, the default first."""
    cards = {p.stem: json.loads(p.read_text()) for p in Path(weights_dir).glob("*.json")}
    known = [DEFAULT_DETECTOR, *(n for n in DETECTOR_ORDER if n != DEFAULT_DETECTOR)]
    order = [n for n in known if n in cards] + sorted(set(cards) - set(known))
    return {name: cards[name] for name in order}


def pct(x, digits=2) -> str:
    return "" if x is None else f"{100 * x:.{digits}f}%"


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _clean_test(card) -> dict:
    """The robustness table's row for CIFAKE's `test` as shipped (real vs fake; an EDITED verdict is wrong)."""
    return next(r for r in card["robustness"] if r["perturbation"] == "as shipped")


def _calls_edited(card) -> bool:
    return "EDITED" in (card.get("verdict_classes") or card["classes"])


def _edited(card, key):
    return card["test"]["per_class_accuracy"].get("EDITED") if key == "recall" else card["test"].get(key)


def detectors_table(cards) -> str:
    """README's table: each shipped detector's headline figures."""
    rows = []
    for name, c in cards.items():
        t, bias = c["test"], c["bias"]
        edits = _calls_edited(c)
        rows.append([f"`{name}`" + (" (default)" if name == DEFAULT_DETECTOR else ""), t["test_path"],
                     pct(t["accuracy"]), pct(t["balanced_accuracy"]), pct(_clean_test(c)["accuracy"]),
                     pct(_edited(c, "recall")) if edits else "", pct(t.get("edited_recall_possible")),
                     pct(t.get("edited_called_fake")), pct(t.get("real_called_edited")) if edits else "",
                     f"{pct(bias['worst_real_vs_fake_accuracy'])} ({bias['worst_change']})",
                     pct(bias["max_called_edited"]) if edits else "", pct(c["outside"]["test_outside"])])
    return _table(["detector", "test split", "accuracy", "balanced accuracy", "real vs fake on `test`",
                   "EDITED recall", "EDITED or possibly edited", "EDITED called FAKE", "REAL called EDITED",
                   "worst real vs fake over the label-neutral changes",
                   "most called EDITED by one change", "`test` called outside"], rows)


def files_table(cards) -> str:
    """The model card's table of what each detector is and how it was made."""
    rows = [["network", *(f"`{c['model_name']}`, {c['parameters']:,} parameters" for c in cards.values())],
            ["answers", *(" / ".join(c.get("verdict_classes") or c["classes"]) for c in cards.values())],
            ["files", *(f"`{c['weights']}` {c['bytes'] / 1e6:.2f} MB ({c['dtype']}), `{c['onnx']}` "
                        f"{c['onnx_bytes'] / 1e6:.2f} MB" for c in cards.values())],
            ["trained by", *(", then ".join(f"`{cmd}`" for cmd in [*c["train_command"].split(", then "),
                                                                    c["ship_command"]]) for c in cards.values())],
            ["epochs, TTA, temperature",
             *(f"{c['epochs']}, {c['tta']}, {c['temperature']:.3f}" for c in cards.values())],
            ["commit, train / validation signature",
             *(f"`{c['provenance']['git_commit'][:7]}`, `{c['provenance']['train_signature']}` / "
               f"`{c['provenance']['val_signature']}`" for c in cards.values())]]
    return _table(["", *(f"`{n}`" for n in cards)], rows)


def metrics_table(cards) -> str:
    """The model card's metrics, each on the detector's own test split and on CIFAKE's `test`."""
    cs = cards.values()
    rows = [["test split", *(f"{c['test']['test_path']} ({c['test']['n']:,} images)" for c in cs)],
            ["accuracy", *(pct(c["test"]["accuracy"]) for c in cs)],
            ["balanced accuracy", *(pct(c["test"]["balanced_accuracy"]) for c in cs)],
            ["ROC-AUC", *(f"{c['test']['roc_auc']:.3f}" for c in cs)],
            ["ECE", *(f"{c['test']['ece']:.3f}" for c in cs)],
            ["re-saved as JPEG 75", *(f"{pct(c['test']['jpeg_accuracy'])} "
                                      f"({100 * c['test']['jpeg_accuracy_change']:+.2f} points)" for c in cs)],
            ["real vs fake on `test` (an EDITED verdict wrong)", *(pct(_clean_test(c)["accuracy"]) for c in cs)],
            ["REAL called EDITED", *(pct(c["test"].get("real_called_edited")) for c in cs)],
            ["outside what it knows: `test`, its test split",
             *(" / ".join(pct(v) for v in c["outside"]["outside_by_split"].values()) for c in cs)],
            ["same verdict in float16 on its test split", *(pct(c["half_precision"]["same_verdict"], 3) for c in cs)],
            ["regression slice (PyTorch / ONNX)", *(f"{pct(c['regression_slice']['accuracy'])} / "
                                                   f"{pct(c['onnx_slice']['accuracy'])}" for c in cs)]]
    return _table(["", *(f"`{n}`" for n in cards)], rows)


def edits_table(cards) -> str:
    """EDITED recall by kind of edit on the test split, and the edit map's pixel figures, of each detector that
    calls EDITED."""
    editing = {n: c for n, c in cards.items() if _calls_edited(c)}
    kinds = sorted({k for c in editing.values() for k in c["test"].get("edited_recall_by_kind", {})})
    def recall(row):  # at the EDITED cut, and within "possibly edited" where the detector has that band
        band = f" / {row['recall_possible']:.2f}" if "recall_possible" in row else ""
        return f"{row['recall']:.2f}{band} (of {row['n']:,})"

    rows = [[k.replace("_", " "), *(recall(c["test"]["edited_recall_by_kind"][k])
                                     if k in c["test"].get("edited_recall_by_kind", {}) else ""
                                     for c in editing.values())] for k in kinds]
    rows.append(["all EDITED", *(pct(_edited(c, "recall")) + (f" / {pct(c['test']['edited_recall_possible'])}"
                                                              if "edited_recall_possible" in c["test"] else "")
                                 for c in editing.values())])
    rows.append(["edit map at 0.5: pixel F1, IoU", *(f"{c['test']['edit_map']['pixel_f1']:.3f}, "
                                                     f"{c['test']['edit_map']['pixel_iou']:.3f}"
                                                     if c["test"].get("edit_map") else "" for c in editing.values())])
    rows.append(["a map (4+ pixels) on an unedited image", *(pct(c["test"]["edit_map"]["false_map_rate"])
                                                              if c["test"].get("edit_map") else ""
                                                              for c in editing.values())])
    return _table(["EDITED recall on the test split, by kind (/ with possibly edited)",
                   *(f"`{n}`" for n in editing)], rows)


def bias_table(cards) -> str:
    """The bias table of every detector: accuracy (an EDITED verdict wrong) and share called EDITED under each
    label-neutral change; `drawn` says which of the detector's parts training drew the change for."""
    changes = next(iter(cards.values()))["bias"]["changes"]
    rows = []
    for key, first in changes.items():
        cells = [f"`{key}`", first["what"]]
        for c in cards.values():
            row = c["bias"]["changes"][key]
            edits = _calls_edited(c)
            drawn = "" if row["trained"] is None else ("drawn" if row["trained"] else
                                                        ",".join(row.get("trained_by") or []) or "unseen")
            cells.append(f"{pct(row['accuracy'])}" + (f" / {pct(row['called_edited'])}" if edits else "")
                         + (f" ({drawn})" if drawn else ""))
        rows.append(cells)
    return _table(["change", "what", *(f"`{n}`: accuracy" + (" / EDITED" if _calls_edited(c) else "")
                                       for n, c in cards.items())], rows)


TABLES = {"detectors": detectors_table, "files": files_table, "metrics": metrics_table, "edits": edits_table,
          "bias": bias_table}


def render(text: str, cards) -> str:
    """`text` with every cards block made anew from `cards`."""
    return BLOCK.sub(lambda m: m.group(1) + TABLES[m.group(2)](cards) + m.group(4), text)


def stale_docs(cards=None, root=REPO) -> list:
    """The docs whose generated blocks differ from what the cards make (an unknown block name is a KeyError)."""
    cards = cards or load_cards()
    return [doc for doc in DOCS if render((root / doc).read_text(), cards) != (root / doc).read_text()]


def write_docs(cards=None, root=REPO) -> list:
    """Rewrite every doc's generated blocks from the cards; -> the docs that changed."""
    cards = cards or load_cards()
    changed = stale_docs(cards, root)
    for doc in changed:
        (root / doc).write_text(render((root / doc).read_text(), cards))
    return changed
