"""Camera registry, frame checks and the event logic (detections -> one event per persisting problem)."""

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from contracts import EventKind
from hotline.settings import REPO_ROOT
from streams.codec import Rejected
from vision.detector import Detection
from vision.events import CameraTracker, StaleFrame
from vision.frames import open_frame
from vision.registry import Camera, CameraRegistry

REGISTRY = CameraRegistry.load(REPO_ROOT / "vision" / "cameras.yaml")
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_registry_is_valid_and_zones_contain_points() -> None:
    camera = REGISTRY.get("cam-A2-0007")
    assert camera is not None and camera.district == "A2区"
    kerb = camera.zones[0]
    assert kerb.contains(0.5, 0.8) and not kerb.contains(0.5, 0.2)
    assert REGISTRY.get("cam-nowhere") is None


def test_broken_registry_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    registry = "cameras:\n  - camera_id: c1\n    district: A1区\n    address: x\n    zones: []\n"
    path.write_text(registry, encoding="utf-8")
    with pytest.raises(ValueError, match=r"cameras\.0\.zones"):
        CameraRegistry.load(path)


def test_frames_that_are_not_images_or_too_big_are_rejected() -> None:
    assert open_frame(_png(64, 48), max_pixels=10_000).size == (64, 48)
    with pytest.raises(Rejected) as not_image:
        open_frame(b"GIF89a-not-really", max_pixels=10_000)
    assert not_image.value.error_type == "not_an_image"
    with pytest.raises(Rejected) as too_big:
        open_frame(_png(200, 200), max_pixels=10_000)
    assert too_big.value.error_type == "oversized" and "200x200" in too_big.value.reason


def _garbage(confidence: float = 0.8) -> Detection:
    return Detection("garbage", confidence, (0.2, 0.2, 0.4, 0.4))


def test_a_persisting_problem_makes_one_event_that_ends_when_it_clears() -> None:
    camera = REGISTRY.get("cam-A3-0001")
    assert camera is not None
    tracker = CameraTracker(camera)
    changes = []
    for i in range(10):  # garbage seen in 10 frames: starts after min_frames=3, once
        changes += tracker.update([_garbage()], T0 + timedelta(seconds=10 * i))
    started = [c for c in changes if c.state == "started"]
    assert len(started) == 1 and started[0].kind == EventKind.EXPOSED_GARBAGE
    assert started[0].started_at == T0
    for i in range(10, 16):  # gone for clear_frames=5
        changes += tracker.update([], T0 + timedelta(seconds=10 * i))
    ended = [c for c in changes if c.state == "ended"]
    assert len(ended) == 1 and ended[0].event_id == started[0].event_id


def test_low_confidence_and_flicker_do_not_start_events() -> None:
    camera = REGISTRY.get("cam-A3-0001")
    assert camera is not None
    tracker = CameraTracker(camera)
    changes = []
    for i in range(12):
        detections = [_garbage(0.1)] if i % 2 else [_garbage()] if i % 3 == 0 else []
        changes += tracker.update(detections, T0 + timedelta(seconds=i))
    assert changes == []


def test_fire_starts_at_once() -> None:
    camera = REGISTRY.get("cam-A3-0001")
    assert camera is not None
    changes = CameraTracker(camera).update([Detection("smoke", 0.7, (0.1, 0.1, 0.3, 0.3))], T0)
    assert [(c.kind, c.state) for c in changes] == [(EventKind.FIRE_SMOKE, "started")]


def test_only_a_vehicle_that_stays_in_the_no_parking_zone_long_enough_is_illegal_parking() -> None:
    camera = REGISTRY.get("cam-A2-0007")
    assert camera is not None
    tracker = CameraTracker(camera)
    parked = Detection("car", 0.9, (0.1, 0.6, 0.3, 0.8))
    changes = []
    for i in range(8):  # a passing car: a different place every frame
        x = 0.1 * i
        changes += tracker.update([Detection("car", 0.9, (x, 0.6, x + 0.1, 0.7))], T0 + timedelta(seconds=60 * i))
    assert not any(c.kind == EventKind.ILLEGAL_PARKING for c in changes)
    later = T0 + timedelta(hours=1)
    for i in range(8):  # the same car in the same place for 7 minutes, frames a minute apart
        changes += tracker.update([parked], later + timedelta(seconds=60 * i))
    parking = [c for c in changes if c.kind == EventKind.ILLEGAL_PARKING]
    assert len(parking) == 1 and parking[0].state == "started"
    assert parking[0].started_at >= later + timedelta(seconds=300)


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_only_jpeg_and_png_are_decoded_and_broken_files_name_the_problem() -> None:
    for fmt in ("GIF", "BMP", "TIFF"):  # Pillow reads them, but no decoder other than JPEG/PNG sees camera bytes
        with pytest.raises(Rejected) as other:
            open_frame(_encoded(Image.new("RGB", (32, 32)), fmt), max_pixels=10_000)
        assert other.value.error_type == "not_an_image", fmt
    truncated = _png(64, 48)
    broken = truncated[:30] + b"\x00" * 8 + truncated[38:]  # a corrupt header chunk
    with pytest.raises(Rejected) as corrupt:
        open_frame(broken, max_pixels=10_000)
    assert corrupt.value.error_type == "not_an_image"


def test_a_frame_over_pillows_own_bomb_limit_is_oversized_not_unreadable() -> None:
    huge = Image.new("1", (10_000, 10_000))  # 100 Mpx: past Pillow's decompression-bomb warning
    with pytest.raises(Rejected) as too_big:
        open_frame(_encoded(huge, "PNG"), max_pixels=10_000)
    assert too_big.value.error_type == "oversized"


def test_sixteen_bit_frames_are_scaled_not_clipped_and_exif_rotation_is_applied() -> None:
    ramp = Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1)))
    grey = np.asarray(open_frame(_encoded(ramp, "PNG"), max_pixels=10_000))
    assert grey.shape == (16, 64, 3) and grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 50
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: shown rotated 90° clockwise
    sideways = _encoded(Image.new("RGB", (200, 100)), "JPEG", exif=exif.tobytes())
    assert open_frame(sideways, max_pixels=100_000).size == (100, 200)


def test_a_redelivered_or_older_frame_is_refused_and_counts_for_nothing() -> None:
    camera = REGISTRY.get("cam-A3-0001")
    assert camera is not None
    tracker = CameraTracker(camera)
    assert tracker.update([_garbage()], T0) == []
    for at in (T0, T0 - timedelta(seconds=5)):  # the same frame again, then one from a clock that went back
        with pytest.raises(StaleFrame, match="not later than"):
            tracker.update([_garbage()], at)
    assert tracker.update([_garbage()], T0 + timedelta(seconds=10)) == []  # 2 frames counted, 3 needed
    assert [c.state for c in tracker.update([_garbage()], T0 + timedelta(seconds=20))] == ["started"]


def test_a_parked_car_hidden_for_one_frame_stays_one_event() -> None:
    camera = REGISTRY.get("cam-A2-0007")
    assert camera is not None
    tracker = CameraTracker(camera)
    car = Detection("car", 0.9, (0.1, 0.6, 0.3, 0.8))
    states = []
    for minute in range(20):  # a bus hides the car at minute 8
        changes = tracker.update([] if minute == 8 else [car], T0 + timedelta(minutes=minute))
        states += [c.state for c in changes if c.kind == EventKind.ILLEGAL_PARKING]
    assert states == ["started"]


def test_min_seconds_holds_for_every_kind() -> None:
    camera = Camera.model_validate({
        "camera_id": "c1", "district": "A1区", "address": "x",
        "zones": [{"zone_id": "z", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                   "watches": {"exposed_garbage": {"min_confidence": 0.2, "min_frames": 1, "min_seconds": 600}}}]})
    tracker = CameraTracker(camera)
    assert tracker.update([_garbage()], T0) == []
    assert tracker.update([_garbage()], T0 + timedelta(minutes=5)) == []
    assert [c.state for c in tracker.update([_garbage()], T0 + timedelta(minutes=10))] == ["started"]


@pytest.mark.parametrize(("zones", "problem"), [
    ([{"zone_id": "kerb", "polygon": [[0, 540], [1920, 540], [1920, 1080]], "watches": {"fire_smoke": {}}}],
     "normalised to 0..1"),
    ([{"zone_id": "kerb", "polygon": [[0, 0], [1, 0], [1, 1]], "watches": {"fire_smoke": {}}}] * 2,
     "zone ids appear more than once"),
])
def test_a_registry_with_pixel_polygons_or_repeated_zone_ids_is_refused(
        tmp_path: Path, zones: list[dict[str, object]], problem: str) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump({"cameras": [{"camera_id": "c1", "district": "A1区", "address": "x",
                                                 "zones": zones}]}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        CameraRegistry.load(path)


def test_a_busy_frames_snapshot_stays_under_its_byte_budget() -> None:
    from vision.stage import SNAPSHOT_MAX_BYTES, annotated_snapshot

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8))
    snapshot = annotated_snapshot(noise, _garbage())
    assert len(snapshot) <= SNAPSHOT_MAX_BYTES and Image.open(io.BytesIO(snapshot)).size == (640, 640)
