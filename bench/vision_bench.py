"""Camera detector speed: the serving ONNX path (onnxruntime) vs ultralytics' own predict() on the same frames.

    python -m bench.vision_bench                        # both paths on the CPU, committed weights
    python -m bench.vision_bench --onnx-only            # where ultralytics is not installed
    python -m bench.vision_bench --images DIR --device 0   # on a GPU machine, frames from a folder

Frames are held-out images of the shared vision sets, decoded beforehand (decoding is not timed). The ONNX figures
include letterboxing, the onnxruntime run and decoding + NMS (OnnxYoloDetector.detect, as the camera stage calls it);
ultralytics' include its own pre- and post-processing. Latency is per call; frames/s = frames / total time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vision.detector import OnnxYoloDetector
from vision.training import SOURCE_CLASS_MAP, heldout_files

REPO_ROOT = Path(__file__).resolve().parents[1]  # not hotline.settings: runs in the training venv too
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "vision"


def held_out_paths(data: Path, count: int) -> list[Path]:
    """`count` held-out images, taken round-robin over the sets so every camera kind is in the mix."""
    per_set = [heldout_files(data / name) for name in SOURCE_CLASS_MAP if (data / name).exists()]
    paths = [p for group in zip(*per_set, strict=False) for p in group]
    paths += [p for group in per_set for p in group if p not in paths]
    return [Path(p) for p in paths[:count]]


def held_out_frames(data: Path, count: int) -> list[Image.Image]:
    frames = []
    for path in held_out_paths(data, count):
        with Image.open(path) as image:
            frames.append(image.convert("RGB"))
    return frames


def measure(name: str, call: Callable[[list[Image.Image]], Any], frames: list[Image.Image], batch: int,
            warmup: int = 3) -> dict[str, Any]:
    chunks = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    for chunk in chunks[:warmup]:
        call(chunk)
    latencies = []
    started = time.perf_counter()
    for chunk in chunks:
        t0 = time.perf_counter()
        call(chunk)
        latencies.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - started
    return {"path": name, "batch": batch, "frames": len(frames), "fps": len(frames) / total,
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99))}


def stage_throughput(model: Path, paths: list[Path], batch: int) -> dict[str, Any]:
    """The camera stage as the pipeline runs it, on the embedded bus: decode, detect, track, snapshot, journal.
    Frames go round-robin to the registry's cameras; frames/s over the whole run."""
    import base64
    import tempfile
    from datetime import UTC, datetime, timedelta

    from contracts import CameraFrame, Topic
    from hotline.settings import Settings
    from streams import EmbeddedBus
    from vision import CameraRegistry, make_detect_stage

    settings = Settings()

    registry = CameraRegistry.load(REPO_ROOT / "vision" / "cameras.yaml")
    cameras = [camera.camera_id for camera in registry.cameras]
    stage = make_detect_stage(registry, OnnxYoloDetector(model), settings.limits.max_frame_pixels, batch)
    start = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        bus = EmbeddedBus(Path(tmp) / "journal.sqlite3", settings.max_message_bytes)
        for index, path in enumerate(paths):
            camera = cameras[index % len(cameras)]
            bus.publish(Topic.FRAMES, CameraFrame(frame_id=f"{camera}.{index}", camera_id=camera,
                                                  captured_at=start + timedelta(seconds=index),
                                                  image=base64.b64encode(path.read_bytes())))
        started = time.perf_counter()
        bus.run_until_idle([stage])
        total = time.perf_counter() - started
        events = bus.count(Topic.CAMERA_EVENTS)
        bus.close()
    return {"batch": batch, "frames": len(paths), "cameras": len(cameras), "fps": len(paths) / total,
            "events": events}


def folder_frames(folder: Path, count: int) -> list[Image.Image]:
    frames = []
    for path in sorted(folder.iterdir())[:count]:
        with Image.open(path) as image:
            frames.append(image.convert("RGB"))
    return frames


def ultralytics_predict(weights: Path, imgsz: int, device: str) -> Callable[[list[Image.Image]], Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import importlib

    ultralytics: Any = importlib.import_module("ultralytics")
    model = ultralytics.YOLO(str(weights))

    def call(chunk: list[Image.Image]) -> Any:
        return model.predict(chunk, imgsz=imgsz, conf=0.25, iou=0.5, device=device, verbose=False)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "vision" / "models" / "urban-yolo.onnx")
    parser.add_argument("--pt", type=Path, default=REPO_ROOT / "vision" / "models" / "urban-yolo.pt",
                        help="the same model's ultralytics weights, timed with predict()")
    parser.add_argument("--onnx-only", action="store_true", help="skip ultralytics predict()")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=Path, default=None, help="take the frames from this folder instead")
    parser.add_argument("--device", default="cpu", help='where ultralytics predicts: "cpu" or a GPU index')
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    frames = folder_frames(args.images, args.frames) if args.images else held_out_frames(args.data, args.frames)
    detector = OnnxYoloDetector(args.model)
    rows = [measure("onnxruntime", detector.detect, frames, batch) for batch in args.batches]
    if not args.onnx_only:
        predict = ultralytics_predict(args.pt, detector.input_size, args.device)
        rows += [measure("ultralytics", predict, frames, batch) for batch in args.batches]
    print(f"{len(frames)} held-out frames, imgsz {detector.input_size}, CPU cores: {os.cpu_count()}, "
          f"onnxruntime providers: {detector.providers}, ultralytics device: {args.device}")
    print(f"{'path':<12} {'batch':>5} {'frames/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(f"{row['path']:<12} {row['batch']:>5} {row['fps']:>9.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}")
    for batch in args.batches:
        by_path = {row["path"]: row for row in rows if row["batch"] == batch}
        if len(by_path) == 2:
            ratio = by_path["onnxruntime"]["fps"] / by_path["ultralytics"]["fps"]
            print(f"batch {batch}: ONNX / ultralytics throughput = {ratio:.2f}x")
    if not args.images:
        paths = held_out_paths(args.data, args.frames)
        print("camera stage on the embedded bus (decode, detect, track, snapshot, journal):")
        for batch in args.batches:
            result = stage_throughput(args.model, paths, batch)
            print(f"  batch {result['batch']:>2}: {result['fps']:.1f} frames/s over {result['frames']} frames from "
                  f"{result['cameras']} cameras, {result['events']} event changes")

if __name__ == "__main__":
    main()
