"""Object detectors. `OnnxYoloDetector` serves an ultralytics-exported YOLO ONNX model with onnxruntime."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from contracts import EventKind

# Detector class names (from the training sets) -> what they mean for city management.
LABEL_KINDS: dict[str, EventKind] = {
    "garbage": EventKind.EXPOSED_GARBAGE,
    "overflow": EventKind.OVERFLOWING_BIN,
    "pothole": EventKind.ROAD_DAMAGE,
    "fire": EventKind.FIRE_SMOKE,
    "smoke": EventKind.FIRE_SMOKE,
}
VEHICLE_LABELS = frozenset({"car", "truck", "bus", "motorcycle", "bike", "ambulance", "vehicle"})

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Detection:
    label: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 normalised to 0..1

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


class Detector(Protocol):
    name: str

    def detect(self, images: list[Image.Image]) -> list[list[Detection]]: ...


class OnnxYoloDetector:
    """YOLOv8-style head: output (batch, 4 + classes, anchors) with cx, cy, w, h in input pixels."""

    def __init__(self, model_path: Path, score_threshold: float = 0.25, iou_threshold: float = 0.5) -> None:
        import onnxruntime as ort

        if not model_path.exists():
            raise FileNotFoundError(f"no detector model at {model_path}")
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self._session = ort.InferenceSession(str(model_path), providers=providers)
        meta = self._session.get_modelmeta().custom_metadata_map
        self.labels = _class_names(meta.get("names"), self._session.get_outputs()[0].shape)
        shape = self._session.get_inputs()[0].shape
        imgsz = ast.literal_eval(meta.get("imgsz", "[640]"))
        self.input_size = int(shape[2]) if isinstance(shape[2], int) else int(imgsz[0])
        self._dynamic_batch = not isinstance(shape[0], int)
        self.name = f"onnx-yolo:{model_path.name}"
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold

    @property
    def providers(self) -> list[str]:
        """The onnxruntime execution providers this session runs on, in priority order."""
        return list(self._session.get_providers())

    def detect(self, images: list[Image.Image]) -> list[list[Detection]]:
        if not images:
            return []
        prepared = [_letterbox(image, self.input_size) for image in images]
        if self._dynamic_batch:
            batches = [np.stack([p.tensor for p in prepared])]
        else:
            batches = [p.tensor[None] for p in prepared]
        outputs = np.concatenate([self._session.run(None, {self._session.get_inputs()[0].name: b})[0] for b in batches])
        return [self._decode(out, prep) for out, prep in zip(outputs, prepared, strict=True)]

    def _decode(self, output: FloatArray, prep: _Letterboxed) -> list[Detection]:
        predictions = output.T  # anchors x (4 + classes)
        scores = predictions[:, 4:]
        classes = scores.argmax(axis=1)
        confidence = scores[np.arange(len(classes)), classes]
        keep = confidence >= self.score_threshold
        boxes = _cxcywh_to_xyxy(predictions[keep, :4])
        classes, confidence = classes[keep], confidence[keep]
        detections = []
        for index in _nms_per_class(boxes, confidence, classes, self.iou_threshold):
            x1, y1, x2, y2 = prep.to_original(boxes[index])
            detections.append(Detection(self.labels[int(classes[index])], float(confidence[index]), (x1, y1, x2, y2)))
        return detections


@dataclass(frozen=True)
class _Letterboxed:
    tensor: FloatArray
    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int

    def to_original(self, box: FloatArray) -> tuple[float, float, float, float]:
        x1 = (box[0] - self.pad_x) / self.scale / self.width
        y1 = (box[1] - self.pad_y) / self.scale / self.height
        x2 = (box[2] - self.pad_x) / self.scale / self.width
        y2 = (box[3] - self.pad_y) / self.scale / self.height
        return tuple(float(min(max(v, 0.0), 1.0)) for v in (x1, y1, x2, y2))  # type: ignore[return-value]


def _letterbox(image: Image.Image, size: int) -> _Letterboxed:
    width, height = image.size
    scale = min(size / width, size / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))  # a 4000x1 frame too
    canvas = Image.new("RGB", (size, size), (114, 114, 114))
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas.paste(image.resize((new_w, new_h), Image.Resampling.BILINEAR), (pad_x, pad_y))
    tensor = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return _Letterboxed(np.ascontiguousarray(tensor), scale, pad_x, pad_y, width, height)


def _cxcywh_to_xyxy(boxes: FloatArray) -> FloatArray:
    out = np.empty_like(boxes)
    out[:, 0] = boxes[:, 0] - boxes[:, 2] / 2
    out[:, 1] = boxes[:, 1] - boxes[:, 3] / 2
    out[:, 2] = boxes[:, 0] + boxes[:, 2] / 2
    out[:, 3] = boxes[:, 1] + boxes[:, 3] / 2
    return out


def iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of one box `a` against many boxes `b` (xyxy)."""
    x1 = np.maximum(a[0], b[:, 0])
    y1 = np.maximum(a[1], b[:, 1])
    x2 = np.minimum(a[2], b[:, 2])
    y2 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    result: FloatArray = inter / np.maximum(area_a + area_b - inter, 1e-9)
    return result


def _nms_per_class(boxes: FloatArray, scores: FloatArray, classes: Any, threshold: float) -> list[int]:
    keep: list[int] = []
    for cls in np.unique(classes):
        indices = np.where(classes == cls)[0]
        order = indices[np.argsort(-scores[indices])]
        while len(order):
            best, order = order[0], order[1:]
            keep.append(int(best))
            order = order[iou(boxes[best], boxes[order]) < threshold]
    return sorted(keep, key=lambda i: -float(scores[i]))


def _class_names(raw: str | None, output_shape: list[Any]) -> list[str]:
    if raw:
        names = ast.literal_eval(raw)
        return [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
    classes = int(output_shape[1]) - 4
    return [f"class{i}" for i in range(classes)]
