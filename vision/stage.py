"""The camera stage: frames in, urban-management events out (with an annotated snapshot when one starts)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

from contracts import CITYMGMT_EVENT_CODES, CameraFrame, DetectedEvent, Message, Topic
from streams.codec import Rejected
from streams.stage import Output, Stage
from vision.detector import Detection, Detector
from vision.events import CameraTracker, EventChange, StaleFrame
from vision.frames import open_frame
from vision.registry import Camera, CameraRegistry


def make_detect_stage(registry: CameraRegistry, detector: Detector, max_pixels: int, batch_size: int = 8) -> Stage:
    """Frames of any cameras are detected `batch_size` at a time; each camera's tracker sees its frames in order."""
    trackers: dict[str, CameraTracker] = {}

    def checked(frame: CameraFrame) -> tuple[Camera, Image.Image]:
        camera = registry.get(frame.camera_id)
        if camera is None:
            raise Rejected("unknown_camera", f"camera {frame.camera_id!r} is not in the camera registry")
        return camera, open_frame(frame.image, max_pixels)

    def handle_batch(messages: Sequence[Message]) -> list[Sequence[Output] | Rejected]:
        frames = [m for m in messages if isinstance(m, CameraFrame)]
        assert len(frames) == len(messages)
        checks: list[tuple[Camera, Image.Image] | Rejected] = []
        for frame in frames:
            try:
                checks.append(checked(frame))
            except Rejected as rejection:
                checks.append(rejection)
        images = [check[1] for check in checks if not isinstance(check, Rejected)]
        # the only call that may fail for the whole batch, before any tracker has moved: the transports then
        # retry frame by frame without a frame being counted twice
        detections = iter(detector.detect(images) if images else [])
        results: list[Sequence[Output] | Rejected] = []
        for frame, check in zip(frames, checks, strict=True):
            if isinstance(check, Rejected):
                results.append(check)
                continue
            camera, image = check
            found = next(detections)
            try:
                results.append(track(frame, camera, image, found))
            except StaleFrame as stale:
                results.append(Rejected("invalid", f"frame {frame.frame_id}: {stale}"))
            except Exception as exc:  # a bug on one frame must not replay the batch's tracker updates
                results.append(Rejected("processing_error", f"detect: frame {frame.frame_id}: {exc!r}"))
        return results

    def track(frame: CameraFrame, camera: Camera, image: Image.Image, found: list[Detection]) -> list[Output]:
        tracker = trackers.setdefault(camera.camera_id, CameraTracker(camera))
        changes = tracker.update(found, frame.captured_at)
        return [Output(Topic.CAMERA_EVENTS, _event(frame, camera.district, camera.address, change, detector.name,
                                                   image)) for change in changes]

    def handle(message: Message) -> Sequence[Output]:
        (result,) = handle_batch([message])
        if isinstance(result, Rejected):
            raise result
        return result

    return Stage(name="detect", input_topic=Topic.FRAMES, handle=handle, handle_batch=handle_batch,
                 max_batch=batch_size)


def _event(frame: CameraFrame, district: str, address: str, change: EventChange, detector: str,
           image: Image.Image) -> DetectedEvent:
    detection = change.detection
    return DetectedEvent(
        event_id=change.event_id,
        camera_id=frame.camera_id,
        zone_id=change.zone.zone_id,
        kind=change.kind,
        state=change.state,
        started_at=change.started_at,
        observed_at=frame.captured_at,
        confidence=detection.confidence if detection else 0.0,
        bbox_xyxy=detection.box if detection else None,
        district=district,
        address=address,
        citymgmt_code=CITYMGMT_EVENT_CODES[change.kind],
        detector=detector,
        snapshot_jpeg=base64.b64encode(annotated_snapshot(image, detection)) if detection else None,
    )


SNAPSHOT_MAX_BYTES = 120 * 1024


def annotated_snapshot(image: Image.Image, detection: Detection, max_side: int = 640) -> bytes:
    """A JPEG of at most SNAPSHOT_MAX_BYTES (lower quality for a busy frame): it travels on the event and the
    dispatch decision and is kept with the ticket."""
    snapshot = image.copy()
    snapshot.thumbnail((max_side, max_side))
    width, height = snapshot.size
    x1, y1, x2, y2 = detection.box
    draw = ImageDraw.Draw(snapshot)
    draw.rectangle((x1 * width, y1 * height, x2 * width, y2 * height), outline=(255, 0, 0), width=3)
    draw.text((x1 * width + 4, y1 * height + 4), f"{detection.label} {detection.confidence:.2f}", fill=(255, 0, 0))
    for quality in (80, 65, 50, 35, 20):
        buffer = io.BytesIO()
        snapshot.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= SNAPSHOT_MAX_BYTES:
            break
    return buffer.getvalue()
