"""Detector evaluation (pure numpy metrics), the held-out split, and the committed ONNX camera model.

The model tests need vision/models/urban-yolo.onnx and the shared vision sets: when either is missing they fail
(they are never skipped), since the camera path cannot work without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hotline.settings import REPO_ROOT
from vision.detector import LABEL_KINDS, VEHICLE_LABELS, Detection, OnnxYoloDetector
from vision.evaluation import (
    GroundTruth,
    average_precision,
    box_iou,
    evaluate_detections,
    evaluate_onnx_detector,
    label_kind,
    match_image,
    read_class_names,
    read_yolo_labels,
)
from vision.training import UNIFIED_CLASSES, group_key, heldout_files, is_heldout

MODEL = REPO_ROOT / "vision" / "models" / "urban-yolo.onnx"
VISION_DATA = REPO_ROOT.parent / "shared" / "data" / "vision"
CLASSES = ["garbage", "overflow", "fire", "car"]
# Held-out images (never trained on) where the committed model finds the problem at the serving threshold (0.25)
# with a box overlapping the labelled one (IoU >= 0.5): (set, file, expected kind).
KNOWN_FRAMES = [
    ("garbage", "001618_jpg.rf.291d1e5a683a81cdabc971bf75c1b519.jpg", "exposed_garbage"),
    ("garbage", "000470_jpg.rf.10704042940a41230c4eda55f9505562.jpg", "overflowing_bin"),
    ("fire_smoke", "img_81_jpg.rf.963bea253d8ef7f6eea5ccf7dafc7a54.jpg", "fire_smoke"),
    ("fire_smoke", "img_967_jpg.rf.d6d2c2e7daf7d88bd292bfdef1c7bc54.jpg", "fire_smoke"),
]


def _truths() -> list[GroundTruth]:
    return [
        GroundTruth(("garbage", "car"), np.array([[0.1, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.8]], np.float32)),
        GroundTruth(("fire", "overflow"), np.array([[0.0, 0.0, 0.3, 0.3], [0.6, 0.1, 0.7, 0.9]], np.float32)),
        GroundTruth((), np.zeros((0, 4), np.float32)),
    ]


def _as_predictions(truths: list[GroundTruth]) -> list[list[Detection]]:
    return [[Detection(label, 0.9, (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
             for label, b in zip(t.labels, t.boxes, strict=True)] for t in truths]


# --- metrics ---------------------------------------------------------------------------------------------------


def test_ground_truth_against_itself_scores_one_and_nothing_scores_zero() -> None:
    perfect = evaluate_detections(_truths(), _as_predictions(_truths()), CLASSES)
    assert perfect.map50 == pytest.approx(1.0) and perfect.map50_95 == pytest.approx(1.0)
    assert all(m.precision == 1.0 and m.recall == 1.0 for m in perfect.per_class.values())
    assert set(perfect.per_kind) == {"exposed_garbage", "overflowing_bin", "fire_smoke", "vehicle"}
    empty = evaluate_detections(_truths(), [[], [], []], CLASSES)
    assert empty.map50 == 0.0 and empty.map50_95 == 0.0 and empty.kind_map50 == 0.0


def test_iou_thresholds_and_ranking_are_coco_style() -> None:
    gt = np.array([[0.0, 0.0, 1.0, 1.0]], np.float32)
    # IoU 0.72: a hit at 0.50 .. 0.70 (5 of 10 thresholds), a miss above.
    tp = match_image(np.array([[0.0, 0.0, 0.72, 1.0]], np.float32), np.array([0.8], np.float32), gt)
    assert tp[0].tolist() == [True] * 5 + [False] * 5
    assert average_precision(tp, np.array([0.8], np.float32), 1).mean() == pytest.approx(0.5)
    # A confident false positive ranked above the hit: precision 1/2 at full recall.
    boxes = np.array([[0.0, 0.0, 0.1, 0.1], [0.0, 0.0, 1.0, 1.0]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert average_precision(match_image(boxes, scores, gt), scores, 1)[0] == pytest.approx(0.5)
    # Two predictions on one object: the second is a false positive, recall stays 1.
    double = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.98]], np.float32)
    assert match_image(double, scores, gt)[:, 0].tolist() == [True, False]


def test_kinds_merge_fire_and_smoke_but_classes_do_not() -> None:
    truth = [GroundTruth(("fire",), np.array([[0.2, 0.2, 0.6, 0.6]], np.float32))]
    smoke = [[Detection("smoke", 0.7, (0.2, 0.2, 0.6, 0.6))]]
    report = evaluate_detections(truth, smoke, ["fire", "smoke"])
    assert report.per_class["fire"].ap50 == 0.0 and report.per_kind["fire_smoke"].ap50 == pytest.approx(1.0)
    assert label_kind("Car") == "vehicle" and label_kind("garbage_bin") is None


# --- split and classes -----------------------------------------------------------------------------------------


def test_split_is_deterministic_and_keeps_augmented_copies_together() -> None:
    assert group_key("000002_jpg.rf.0bf2e76cd0faa208084d3c0d0596fdc9.jpg") == "000002_jpg"
    copies = [f"fire1_mp4-24_jpg.rf.{h}.jpg" for h in ("aa", "bb", "cc")]
    assert len({is_heldout("fire_smoke", c) for c in copies}) == 1
    names = [f"img-{i}_jpg.rf.x.jpg" for i in range(2000)]
    share = sum(is_heldout("pothole", n) for n in names) / len(names)
    assert 0.12 < share < 0.18
    assert [is_heldout("pothole", n) for n in names] == [is_heldout("pothole", n) for n in names]


def test_unified_classes_are_the_detector_labels() -> None:
    for name in UNIFIED_CLASSES:
        assert name in LABEL_KINDS or name in VEHICLE_LABELS or name == "garbage_bin"


# --- the committed model ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> OnnxYoloDetector:
    assert MODEL.exists(), f"the camera model {MODEL} is missing (train it with vision/training.py)"
    return OnnxYoloDetector(MODEL)


def _image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def test_committed_model_loads_and_detects_sanely(detector: OnnxYoloDetector) -> None:
    assert detector.labels == list(UNIFIED_CLASSES)
    assert detector.input_size in (256, 320, 416, 480, 512, 640)
    frames = [_image(p) for p in heldout_files(VISION_DATA / "garbage")[:3]]
    batch = detector.detect(frames)
    assert len(batch) == 3 and any(batch)
    for detections in batch:
        for d in detections:
            assert d.label in UNIFIED_CLASSES and 0.25 <= d.confidence <= 1.0
            assert 0.0 <= d.box[0] <= d.box[2] <= 1.0 and 0.0 <= d.box[1] <= d.box[3] <= 1.0
    assert detector.detect(frames[:1]) == batch[:1]  # batching does not change the result


@pytest.mark.parametrize(("source", "file_name", "kind"), KNOWN_FRAMES)
def test_committed_model_finds_the_known_problem(detector: OnnxYoloDetector, source: str, file_name: str,
                                                 kind: str) -> None:
    path = VISION_DATA / source / "images" / file_name
    assert is_heldout(source, file_name), "a test frame must come from the held-out split"
    names = [n.lower() for n in read_class_names(VISION_DATA / source)]
    truth = read_yolo_labels(VISION_DATA / source / "labels" / f"{path.stem}.txt", names)
    expected = truth.boxes[[label_kind(label) == kind for label in truth.labels]]
    found = [d for d in detector.detect([_image(path)])[0] if label_kind(d.label) == kind]
    assert found, f"{file_name}: no {kind} detected"
    overlap = box_iou(np.array([d.box for d in found], np.float32), expected)
    assert overlap.max() >= 0.5, f"{file_name}: {kind} detected at the wrong place (IoU {overlap.max():.2f})"


def test_onnx_evaluation_on_held_out_frames() -> None:
    files = heldout_files(VISION_DATA / "fire_smoke")[:8]
    report = evaluate_onnx_detector(MODEL, VISION_DATA / "fire_smoke", files=files)
    assert report.images == 8 and read_class_names(VISION_DATA / "fire_smoke") == ["fire", "smoke"]
    assert set(report.per_class) == {"fire", "smoke"} and set(report.per_kind) == {"fire_smoke"}
    assert 0.0 <= report.map50_95 <= report.map50 <= 1.0
