"""The camera path: camera registry, detectors, event tracking and the detect stage."""

from vision.detector import Detection, Detector, OnnxYoloDetector
from vision.registry import CameraRegistry
from vision.stage import make_detect_stage

__all__ = ["CameraRegistry", "Detection", "Detector", "OnnxYoloDetector", "make_detect_stage"]
