"""Evaluating a detector on a YOLO-format folder with numpy only (runs in the project venv, no ultralytics).

Metrics follow COCO: predictions are matched greedily in score order to the unmatched ground-truth box of highest
IoU, at each IoU threshold 0.50:0.05:0.95; AP is the area under the precision envelope sampled at 101 recall points.
mAP50 / mAP50-95 average AP over the classes that have ground truth. Precision and recall per class are reported at
one confidence (default 0.25, the serving threshold) and IoU 0.5. Per event kind, labels are first mapped to their
kind (fire and smoke -> fire_smoke, vehicle names -> vehicle), so confusing fire with smoke does not count there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from vision.detector import LABEL_KINDS, VEHICLE_LABELS, Detection, FloatArray

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
IOU_THRESHOLDS: FloatArray = np.linspace(0.5, 0.95, 10).astype(np.float32)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
VEHICLE_KIND = "vehicle"
# Dataset class names that the unified model calls otherwise (see vision/training.py SOURCE_CLASS_MAP).
LABEL_ALIASES = {"ambulance": "car", "motorbike": "motorcycle", "bicycle": "bike"}


def read_class_names(data_dir: Path) -> list[str]:
    """Class names from `classes.yaml` (or data.yaml): `names` as a list or an {id: name} mapping."""
    for file in ("classes.yaml", "data.yaml"):
        if (data_dir / file).exists():
            raw: Any = yaml.safe_load((data_dir / file).read_text(encoding="utf-8"))["names"]
            return [str(raw[i]) for i in sorted(raw)] if isinstance(raw, dict) else [str(n) for n in raw]
    raise FileNotFoundError(f"no classes.yaml in {data_dir}")


def label_kind(label: str) -> str | None:
    """The event kind a detector label stands for ('vehicle' for vehicles), None for neutral ones (garbage_bin)."""
    name = label.lower()
    if name in LABEL_KINDS:
        return LABEL_KINDS[name].value
    return VEHICLE_KIND if name in VEHICLE_LABELS else None


# --- ground truth ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundTruth:
    labels: tuple[str, ...]
    boxes: FloatArray  # (n, 4) xyxy normalised to 0..1


def read_yolo_labels(label_file: Path, names: Sequence[str]) -> GroundTruth:
    """A YOLO label file (class cx cy w h, normalised); a missing file is an image without objects."""
    rows = []
    if label_file.exists():
        rows = [line.split() for line in label_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if len(r) == 5]
    values = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32).reshape(-1, 4)
    boxes = np.stack([values[:, 0] - values[:, 2] / 2, values[:, 1] - values[:, 3] / 2,
                      values[:, 0] + values[:, 2] / 2, values[:, 1] + values[:, 3] / 2], axis=1)
    return GroundTruth(tuple(names[int(r[0])] for r in rows), boxes.astype(np.float32))


def dataset_images(data_dir: Path, files: Iterable[Path | str] | None = None) -> list[Path]:
    """Images of a YOLO folder, or only `files` (paths, or names inside data_dir/images)."""
    if files is None:
        return sorted(p for p in (data_dir / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    resolved = [Path(f) if Path(f).is_absolute() or Path(f).exists() else data_dir / "images" / str(f) for f in files]
    missing = [str(p) for p in resolved if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} listed images do not exist, e.g. {missing[0]}")
    return resolved


# --- metrics (pure numpy) --------------------------------------------------------------------------------------


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of xyxy boxes: (n, 4) x (m, 4) -> (n, m)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    result: FloatArray = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)
    return result


def match_image(pred_boxes: FloatArray, pred_scores: FloatArray, gt_boxes: FloatArray,
                thresholds: FloatArray = IOU_THRESHOLDS) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True positives (n_pred, n_thresholds) of one image and class, COCO greedy matching in score order."""
    tp = np.zeros((len(pred_boxes), len(thresholds)), dtype=bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    ious = box_iou(pred_boxes, gt_boxes)
    taken = np.zeros((len(thresholds), len(gt_boxes)), dtype=bool)
    rows = np.arange(len(thresholds))
    for i in np.argsort(-pred_scores, kind="stable"):
        candidates = np.where(taken, -1.0, ious[i][None, :])
        best = candidates.argmax(axis=1)
        hit = candidates[rows, best] >= thresholds
        tp[i] = hit
        taken[rows[hit], best[hit]] = True
    return tp


def average_precision(tp: np.ndarray[Any, Any], scores: FloatArray, n_gt: int) -> FloatArray:
    """COCO 101-point interpolated AP per IoU threshold, from the pooled true positives and scores of one class."""
    if n_gt == 0 or len(scores) == 0:
        return np.zeros(tp.shape[1] if tp.ndim == 2 else len(IOU_THRESHOLDS), dtype=np.float32)
    order = np.argsort(-scores, kind="mergesort")
    tps = np.cumsum(tp[order], axis=0)
    fps = np.cumsum(~tp[order], axis=0)
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, 1e-12)
    aps = np.zeros(tp.shape[1], dtype=np.float32)
    for t in range(tp.shape[1]):
        envelope = np.maximum.accumulate(precision[::-1, t])[::-1]
        index = np.searchsorted(recall[:, t], RECALL_POINTS, side="left")
        sampled = np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0)
        aps[t] = float(sampled.mean())
    return aps


@dataclass
class ClassMetrics:
    instances: int
    predictions: int  # at the report confidence
    precision: float  # at the report confidence, IoU 0.5
    recall: float
    ap50: float
    ap50_95: float


@dataclass
class EvaluationReport:
    images: int
    per_class: dict[str, ClassMetrics]
    per_kind: dict[str, ClassMetrics]
    map50: float
    map50_95: float
    kind_map50: float
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [f"{self.images} images; mAP50 {self.map50:.3f}, mAP50-95 {self.map50_95:.3f} (per class); "
                 f"mAP50 per kind {self.kind_map50:.3f}", ""]
        for title, table in (("class", self.per_class), ("kind", self.per_kind)):
            lines += [f"| {title} | instances | P | R | AP50 | AP50-95 |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
            lines += [f"| {name} | {m.instances} | {m.precision:.3f} | {m.recall:.3f} | {m.ap50:.3f} "
                      f"| {m.ap50_95:.3f} |" for name, m in table.items()]
            lines.append("")
        return "\n".join(lines)


@dataclass
class _Pool:
    scores: list[FloatArray] = field(default_factory=list)
    tp: list[np.ndarray[Any, Any]] = field(default_factory=list)
    n_gt: int = 0


def evaluate_detections(truths: Sequence[GroundTruth], predictions: Sequence[Sequence[Detection]],
                        classes: Sequence[str], report_conf: float = 0.25) -> EvaluationReport:
    """Per-class and per-kind metrics of `predictions` against `truths` (one entry per image, same order).

    Only labels in `classes` are scored per class (predictions of other labels are ignored there); per kind, every
    label that maps to a kind present in the ground truth counts.
    """
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} images of ground truth but {len(predictions)} of predictions")
    per_class = _metrics(truths, predictions, {c: c for c in classes}, report_conf)
    labels = sorted({*classes, *(d.label for p in predictions for d in p)})
    kinds = {c: k for c in labels if (k := label_kind(c))}
    present = {kinds[c] for c in classes if c in kinds}
    by_kind = {c: k for c, k in sorted(kinds.items(), key=lambda item: item[1]) if k in present}
    per_kind = _metrics(truths, predictions, by_kind, report_conf)
    scored = [m for m in per_class.values() if m.instances]
    scored_kinds = [m for m in per_kind.values() if m.instances]
    return EvaluationReport(
        images=len(truths), per_class=per_class, per_kind=per_kind,
        map50=float(np.mean([m.ap50 for m in scored])) if scored else 0.0,
        map50_95=float(np.mean([m.ap50_95 for m in scored])) if scored else 0.0,
        kind_map50=float(np.mean([m.ap50 for m in scored_kinds])) if scored_kinds else 0.0,
    )


def _metrics(truths: Sequence[GroundTruth], predictions: Sequence[Sequence[Detection]], group: dict[str, str],
             report_conf: float) -> dict[str, ClassMetrics]:
    """Metrics per group, where `group` maps a label to the name it is scored under (itself, or its kind)."""
    pools: dict[str, _Pool] = {g: _Pool() for g in sorted(set(group.values()), key=list(group.values()).index)}
    for truth, detections in zip(truths, predictions, strict=True):
        for name, pool in pools.items():
            gt_boxes = truth.boxes[[group.get(label) == name for label in truth.labels]]
            mine = [d for d in detections if group.get(d.label) == name]
            scores = np.array([d.confidence for d in mine], dtype=np.float32)
            boxes = np.array([d.box for d in mine], dtype=np.float32).reshape(-1, 4)
            pool.scores.append(scores)
            pool.tp.append(match_image(boxes, scores, gt_boxes))
            pool.n_gt += len(gt_boxes)
    result = {}
    for name, pool in pools.items():
        scores = np.concatenate(pool.scores) if pool.scores else np.zeros(0, np.float32)
        tp = np.concatenate(pool.tp) if pool.tp else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        aps = average_precision(tp, scores, pool.n_gt)
        confident = scores >= report_conf
        hits = int(tp[confident, 0].sum())
        result[name] = ClassMetrics(
            instances=pool.n_gt, predictions=int(confident.sum()),
            precision=hits / int(confident.sum()) if confident.any() else 0.0,
            recall=hits / pool.n_gt if pool.n_gt else 0.0,
            ap50=float(aps[0]), ap50_95=float(aps.mean()),
        )
    return result


# --- the ONNX detector on a folder -----------------------------------------------------------------------------


def evaluate_onnx_detector(model_path: Path, data_dir: Path, files: Iterable[Path | str] | None = None,
                           score_threshold: float = 0.001, iou_threshold: float = 0.6, max_detections: int = 300,
                           batch_size: int = 8, report_conf: float = 0.25) -> EvaluationReport:
    """mAP and per-class / per-kind P/R of an ONNX YOLO model on a YOLO folder (images/, labels/, classes.yaml).

    `files` restricts the evaluation to those images (e.g. `vision.training.heldout_files(data_dir)`). Dataset class
    names are lower-cased and aliased onto the model's labels (Ambulance -> car).
    """
    from vision.detector import OnnxYoloDetector

    detector = OnnxYoloDetector(model_path, score_threshold=score_threshold, iou_threshold=iou_threshold)
    classes = [_model_label(n, detector.labels) for n in read_class_names(data_dir)]
    images = dataset_images(data_dir, files)
    truths = [read_yolo_labels(data_dir / "labels" / f"{p.stem}.txt", classes) for p in images]
    started = time.monotonic()
    predictions: list[list[Detection]] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        frames = [_load_rgb(p) for p in chunk]
        predictions += [d[:max_detections] for d in detector.detect(frames)]
        if (start // batch_size) % 10 == 0:
            log.info("evaluated %d/%d images", start + len(chunk), len(images))
    report = evaluate_detections(truths, predictions, list(dict.fromkeys(classes)), report_conf)
    report.seconds = time.monotonic() - started
    report.settings = {"model": str(model_path), "data": str(data_dir), "score_threshold": score_threshold,
                       "nms_iou": iou_threshold, "max_detections": max_detections, "report_conf": report_conf,
                       "input_size": detector.input_size}
    return report


def _model_label(name: str, model_labels: Sequence[str]) -> str:
    lower = name.lower()
    known = {label.lower() for label in model_labels}
    return LABEL_ALIASES.get(lower, lower) if lower not in known else lower


def _load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")
