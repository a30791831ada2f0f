"""From detections to events: a condition must hold long enough to start an event, and clear to end it.

One open event per (camera, zone, kind): a persisting problem makes one event (so one ticket), not one per
frame. Vehicles are tracked by box overlap so that only one that stays put in a no-parking zone counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from contracts import EventKind
from vision.detector import LABEL_KINDS, VEHICLE_LABELS, Detection, iou
from vision.registry import Camera, Thresholds, Zone

STATIONARY_IOU = 0.6


@dataclass
class _Condition:
    hits: int = 0
    misses: int = 0
    since: datetime | None = None
    open_event_id: str | None = None
    best: Detection | None = None


@dataclass
class _VehicleTrack:
    box: tuple[float, float, float, float]
    first_seen: datetime
    frames: int = 1
    misses: int = 0  # frames in a row it was not seen (occluded, missed by the detector)


@dataclass(frozen=True)
class EventChange:
    event_id: str
    zone: Zone
    kind: EventKind
    state: str  # "started" or "ended"
    started_at: datetime
    detection: Detection | None


class StaleFrame(ValueError):
    """A frame not later than the camera's last one: a redelivery, or a camera clock that stands or goes back."""


@dataclass
class CameraTracker:
    camera: Camera
    _conditions: dict[tuple[str, EventKind], _Condition] = field(default_factory=dict)
    _vehicles: dict[str, list[_VehicleTrack]] = field(default_factory=dict)
    _last_at: datetime | None = None

    def update(self, detections: list[Detection], at: datetime) -> list[EventChange]:
        """Raises StaleFrame, without changing anything, for a frame not later than the last one: counting it
        would let one frame delivered three times meet min_frames, or give a new event an ended one's id."""
        if self._last_at is not None and at <= self._last_at:
            raise StaleFrame(f"frame captured at {at.isoformat()} is not later than camera "
                             f"{self.camera.camera_id}'s last frame ({self._last_at.isoformat()})")
        self._last_at = at
        changes = []
        for zone in self.camera.zones:
            for kind, thresholds in zone.watches.items():
                evidence = self._evidence(zone, kind, thresholds, detections, at)
                change = self._advance(zone, kind, thresholds, evidence, at)
                if change:
                    changes.append(change)
        return changes

    def _evidence(self, zone: Zone, kind: EventKind, thresholds: Thresholds,
                  detections: list[Detection], at: datetime) -> Detection | None:
        in_zone = [d for d in detections if d.confidence >= thresholds.min_confidence and zone.contains(*d.centre)]
        if kind == EventKind.ILLEGAL_PARKING:
            return self._stationary_vehicle(zone, [d for d in in_zone if d.label.lower() in VEHICLE_LABELS],
                                            thresholds, at)
        matching = [d for d in in_zone if LABEL_KINDS.get(d.label.lower()) == kind]
        return max(matching, key=lambda d: d.confidence) if matching else None

    def _stationary_vehicle(self, zone: Zone, vehicles: list[Detection], thresholds: Thresholds,
                            at: datetime) -> Detection | None:
        unmatched = list(self._vehicles.get(zone.zone_id, []))
        tracks: list[_VehicleTrack] = []
        vehicles = sorted(vehicles, key=lambda v: -v.confidence)
        for vehicle in vehicles:
            match = None
            if unmatched:  # one detection per track: two cars side by side do not share one history
                overlaps = iou(np.array(vehicle.box), np.array([t.box for t in unmatched]))
                if overlaps.max() >= STATIONARY_IOU:
                    match = unmatched.pop(int(overlaps.argmax()))
            tracks.append(_VehicleTrack(vehicle.box, match.first_seen, match.frames + 1) if match
                          else _VehicleTrack(vehicle.box, at))
        parked = [(v, t) for v, t in zip(vehicles, tracks, strict=True)
                  if t.frames >= thresholds.min_frames
                  and (at - t.first_seen).total_seconds() >= thresholds.min_seconds]
        # a vehicle missed in a frame or two (a passing bus hides it) keeps its history for clear_frames
        kept = [_VehicleTrack(t.box, t.first_seen, t.frames, t.misses + 1) for t in unmatched
                if t.misses + 1 < thresholds.clear_frames]
        self._vehicles[zone.zone_id] = tracks + kept
        return max(parked, key=lambda pair: pair[0].confidence)[0] if parked else None

    def _advance(self, zone: Zone, kind: EventKind, thresholds: Thresholds,
                 evidence: Detection | None, at: datetime) -> EventChange | None:
        state = self._conditions.setdefault((zone.zone_id, kind), _Condition())
        if evidence is not None:
            state.hits += 1
            state.misses = 0
            state.since = state.since or at
            if state.best is None or evidence.confidence >= state.best.confidence:
                state.best = evidence
            # a parked vehicle's track already had to persist min_frames and min_seconds
            parking = kind == EventKind.ILLEGAL_PARKING
            held_long_enough = parking or (at - state.since).total_seconds() >= thresholds.min_seconds
            if state.open_event_id is None and state.hits >= (1 if parking else thresholds.min_frames) \
                    and held_long_enough:
                state.open_event_id = _event_id(self.camera.camera_id, zone.zone_id, kind, state.since)
                return EventChange(state.open_event_id, zone, kind, "started", state.since, state.best)
            return None
        state.misses += 1
        if state.open_event_id is None:
            state.hits, state.since, state.best = 0, None, None
            return None
        if state.misses >= thresholds.clear_frames:
            assert state.since is not None
            change = EventChange(state.open_event_id, zone, kind, "ended", state.since, None)
            self._conditions[(zone.zone_id, kind)] = _Condition()
            return change
        return None


def _event_id(camera_id: str, zone_id: str, kind: EventKind, since: datetime) -> str:
    """Deterministic, so a replayed frame sequence names the same event (and so the same ticket)."""
    digest = hashlib.sha1(f"{camera_id}|{zone_id}|{kind.value}|{since.isoformat()}".encode()).hexdigest()
    return f"{camera_id}.{digest[:16]}"
