"""The camera registry: where each camera is, and which zones watch for which event kinds."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts import EventKind


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_confidence: float = Field(0.4, ge=0, le=1)
    min_frames: int = Field(3, ge=1)
    min_seconds: float = Field(0, ge=0)
    clear_frames: int = Field(5, ge=1)


class Zone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zone_id: str
    name: str = ""
    polygon: list[tuple[float, float]] = Field(min_length=3)
    watches: dict[EventKind, Thresholds]

    @model_validator(mode="after")
    def _normalised(self) -> Zone:
        outside = [point for point in self.polygon if not all(0 <= v <= 1 for v in point)]
        if outside:
            raise ValueError(f"zone {self.zone_id!r}: polygon points must be normalised to 0..1 of the image "
                             f"(pixel coordinates?): {outside[:3]}")
        return self

    def contains(self, x: float, y: float) -> bool:
        """Ray casting on normalised coordinates."""
        inside = False
        points = self.polygon
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
            if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
                inside = not inside
        return inside


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: str
    name: str = ""
    district: str
    address: str
    location: Location | None = None
    zones: list[Zone] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_zones(self) -> Camera:
        if duplicates := _repeated([z.zone_id for z in self.zones]):
            raise ValueError(f"camera {self.camera_id!r}: zone ids appear more than once: {duplicates}")
        return self


class CameraRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cameras: list[Camera]

    @model_validator(mode="after")
    def _unique_ids(self) -> CameraRegistry:
        if duplicates := _repeated([c.camera_id for c in self.cameras]):
            raise ValueError(f"camera ids appear more than once: {duplicates}")
        return self

    def get(self, camera_id: str) -> Camera | None:
        return next((c for c in self.cameras if c.camera_id == camera_id), None)

    @classmethod
    def load(cls, path: Path) -> CameraRegistry:
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (ValidationError, yaml.YAMLError) as exc:
            raise ValueError(f"camera registry {path} is invalid: {exc}") from exc


def _repeated(ids: list[str]) -> list[str]:
    return sorted({i for i in ids if ids.count(i) > 1})
