"""The camera stage on the stream layer: frames of several cameras go through the detector in batches, bad frames
are dead-lettered without holding up the rest, and batching never changes which events come out."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from contracts import CameraFrame, DeadLetter, DetectedEvent, Topic
from hotline.settings import REPO_ROOT, Settings
from streams import EmbeddedBus, Stage
from vision import CameraRegistry, OnnxYoloDetector, make_detect_stage
from vision.detector import Detection
from vision.training import heldout_files

VISION_DATA = REPO_ROOT.parent / "shared" / "data" / "vision"
REGISTRY = CameraRegistry.load(REPO_ROOT / "vision" / "cameras.yaml")
T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
SETTINGS = Settings()
MAX_PIXELS = SETTINGS.limits.max_frame_pixels


class CountingDetector:
    """The committed ONNX detector, recording how many frames each call got (and failing on demand)."""

    def __init__(self, inner: OnnxYoloDetector, fail_batches_over: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[int] = []
        self.fail_batches_over = fail_batches_over

    def detect(self, images: list[Image.Image]) -> list[list[Detection]]:
        self.calls.append(len(images))
        if self.fail_batches_over is not None and len(images) > self.fail_batches_over:
            raise RuntimeError("out of GPU memory")  # what a too-large batch does on a small card
        return self.inner.detect(images)


@pytest.fixture(scope="module")
def onnx_detector() -> OnnxYoloDetector:
    return OnnxYoloDetector(REPO_ROOT / "vision" / "models" / "urban-yolo.onnx", score_threshold=0.1)


def _frames() -> list[CameraFrame]:
    """Two cameras interleaved, as they arrive from the field: a garbage point and a village road."""
    garbage = heldout_files(VISION_DATA / "garbage")[:6]
    road = heldout_files(VISION_DATA / "pothole")[:6]
    frames = []
    for index, (garbage_file, road_file) in enumerate(zip(garbage, road, strict=True)):
        for camera, path in (("cam-A3-0001", garbage_file), ("cam-A7-0012", road_file)):
            frames.append(CameraFrame(frame_id=f"{camera}.{index}", camera_id=camera,
                                      captured_at=T0 + timedelta(seconds=10 * index),
                                      image=base64.b64encode(Path(path).read_bytes())))
    return frames


def _run(tmp_path: Path, stage: Stage, frames: list[CameraFrame], bad: dict[int, bytes] | None = None
         ) -> tuple[list[DetectedEvent], list[DeadLetter], int]:
    bus = EmbeddedBus(tmp_path / "journal.sqlite3", SETTINGS.max_message_bytes)
    try:
        for index, frame in enumerate(frames):
            if bad and index in bad:
                bus.publish_raw(Topic.FRAMES, bad[index], key=f"bad-{index}")
            bus.publish(Topic.FRAMES, frame)
        bus.run_until_idle([stage])
        events = [DetectedEvent.model_validate_json(r.value) for r in bus.records(Topic.CAMERA_EVENTS)]
        letters = [DeadLetter.model_validate_json(r.value) for r in bus.records(Topic.DEAD_LETTER)]
        return events, letters, bus.lag(stage)
    finally:
        bus.close()


def _summary(events: list[DetectedEvent]) -> list[tuple[str, str | None, str, str]]:
    return [(e.camera_id, e.zone_id, str(e.kind), str(e.state)) for e in events]


def test_frames_of_several_cameras_share_detector_runs_and_give_the_same_events(
        tmp_path: Path, onnx_detector: OnnxYoloDetector) -> None:
    frames = _frames()
    one_by_one = CountingDetector(onnx_detector)
    single_events, _, _ = _run(tmp_path / "single", make_detect_stage(REGISTRY, one_by_one, MAX_PIXELS, 1), frames)
    batched = CountingDetector(onnx_detector)
    batch_events, letters, lag = _run(tmp_path / "batched", make_detect_stage(REGISTRY, batched, MAX_PIXELS, 4),
                                      frames)
    assert one_by_one.calls == [1] * len(frames)
    assert batched.calls == [4, 4, 4]  # 12 frames of two cameras, four at a time
    assert letters == [] and lag == 0
    assert _summary(batch_events) == _summary(single_events)
    assert {e.camera_id for e in batch_events} == {"cam-A3-0001", "cam-A7-0012"}  # both cameras made events


def test_bad_frames_in_a_batch_are_dead_lettered_and_the_others_still_detected(
        tmp_path: Path, onnx_detector: OnnxYoloDetector) -> None:
    frames = _frames()
    stranger = frames[3].model_copy(update={"camera_id": "cam-nowhere", "frame_id": "cam-nowhere.1"})
    not_image = frames[5].model_copy(update={"image": b"GIF89a-not-really", "frame_id": "cam-A3-0001.x"})
    frames[3:3] = [stranger]
    frames[7:7] = [not_image]
    detector = CountingDetector(onnx_detector)
    events, letters, lag = _run(tmp_path, make_detect_stage(REGISTRY, detector, MAX_PIXELS, 4), frames,
                                bad={0: b'{"schema_id": "camera.frame/v1"'})
    assert sorted(letter.error_type for letter in letters) == ["malformed", "not_an_image", "unknown_camera"]
    unknown = next(letter for letter in letters if letter.error_type == "unknown_camera")
    assert "cam-nowhere" in unknown.reason and unknown.stage == "detect"
    assert sum(detector.calls) == len(frames) - 2  # every good frame detected once, the bad ones never
    assert lag == 0 and events


def test_a_failing_batch_falls_back_to_one_frame_at_a_time(tmp_path: Path, onnx_detector: OnnxYoloDetector) -> None:
    frames = _frames()
    reference, _, _ = _run(tmp_path / "ref", make_detect_stage(REGISTRY, CountingDetector(onnx_detector),
                                                               MAX_PIXELS, 4), frames)
    flaky = CountingDetector(onnx_detector, fail_batches_over=1)
    events, letters, lag = _run(tmp_path / "flaky", make_detect_stage(REGISTRY, flaky, MAX_PIXELS, 4), frames)
    assert letters == [] and lag == 0
    assert flaky.calls == [4, 1, 1, 1, 1] * 3  # each failed batch of four, then its frames alone
    assert _summary(events) == _summary(reference)


def test_a_bug_on_one_frame_dead_letters_that_frame_without_replaying_the_batch(
        tmp_path: Path, onnx_detector: OnnxYoloDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    import vision.stage

    frames = _frames()
    broken = frames[1].frame_id
    original = vision.stage._event

    def event_or_bug(frame: CameraFrame, *args: object, **kwargs: object) -> DetectedEvent:
        if frame.frame_id == broken:
            raise KeyError("a bug")
        return original(frame, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vision.stage, "_event", event_or_bug)
    monkeypatch.setattr(vision.stage, "CameraTracker", _AlwaysChanging)
    detector = CountingDetector(onnx_detector)
    _, letters, lag = _run(tmp_path, make_detect_stage(REGISTRY, detector, MAX_PIXELS, 4), frames)
    assert detector.calls == [4, 4, 4]  # no frame detected twice: the batch was not replayed
    assert [(letter.error_type, broken in letter.reason) for letter in letters] == [("processing_error", True)]
    assert lag == 0


class _AlwaysChanging:
    """A tracker that reports an event change on every frame, so every frame builds an event."""

    def __init__(self, camera: object) -> None:
        from vision.events import CameraTracker

        self.inner = CameraTracker(camera)  # type: ignore[arg-type]

    def update(self, detections: list[Detection], at: datetime) -> list[object]:
        from vision.events import EventChange

        self.inner.update(detections, at)
        zone = self.inner.camera.zones[0]
        kind = next(iter(zone.watches))
        return [EventChange(f"e-{int(at.timestamp())}", zone, kind, "started", at, Detection("garbage", 0.9,
                                                                                         (0.1, 0.1, 0.2, 0.2)))]


class _PileDetector:
    """A garbage pile in every frame, or none where the frame's index is listed as clear."""

    name = "scripted@1"

    def __init__(self, clear: set[int] | None = None) -> None:
        self.clear = clear or set()
        self.seen = 0

    def detect(self, images: list[Image.Image]) -> list[list[Detection]]:
        found = []
        for _ in images:
            found.append([] if self.seen in self.clear else [Detection("garbage", 0.9, (0.2, 0.2, 0.4, 0.4))])
            self.seen += 1
        return found


def test_a_problem_still_there_after_a_restart_or_a_gap_stays_one_live_ticket(tmp_path: Path,
                                                                             migrated_db: Path) -> None:
    """The trackers live in memory: a restarted worker (or a pile hidden for clear_frames) starts a new event. The
    ticketing stage merges it into the open ticket of the same camera, zone and kind."""
    import shutil

    from dispatch_rules import DecisionTableRouter, make_dispatch_stages
    from dispatch_rules.bundle import default_bundle
    from dispatch_rules.compiler import compile_rules
    from tickets import TicketStore, make_ticketing_stage

    shutil.copy(migrated_db, tmp_path / "tickets.sqlite3")
    store = TicketStore(f"sqlite:///{tmp_path / 'tickets.sqlite3'}", migrate=False)
    later_stages = [*make_dispatch_stages(DecisionTableRouter(compile_rules(default_bundle(), "test"))),
                    make_ticketing_stage(store)]
    jpeg = base64.b64encode(Path(heldout_files(VISION_DATA / "garbage")[0]).read_bytes())

    def run(first: int, count: int, detector: _PileDetector) -> None:
        bus = EmbeddedBus(tmp_path / "journal.sqlite3", SETTINGS.max_message_bytes)
        for i in range(first, first + count):
            bus.publish(Topic.FRAMES, CameraFrame(frame_id=f"cam-A3-0001.{i}", camera_id="cam-A3-0001",
                                                  captured_at=T0 + timedelta(seconds=10 * i), image=jpeg))
        bus.run_until_idle([make_detect_stage(REGISTRY, detector, MAX_PIXELS, 1), *later_stages])
        bus.close()

    run(0, 5, _PileDetector())
    run(5, 7, _PileDetector())  # the worker restarted: its trackers start again from nothing
    run(12, 14, _PileDetector(clear=set(range(6))))  # hidden for 6 frames (clear_frames 5), then back
    tickets = store.list(limit=10)
    live = [t for t in tickets if t.status != "merged"]
    assert len(tickets) == 3 and len(live) == 1
    assert {t.parent_ticket_id for t in tickets if t.status == "merged"} == {live[0].id}
    assert live[0].department == "A3区城市管理局"
    parent = store.get(live[0].id)
    assert parent is not None and [t.transition for t in parent.transitions].count("merge_child") == 2
