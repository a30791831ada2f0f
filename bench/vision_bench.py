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


def held_out_frames(data: Path, count: int) -> list[Image.Image]:
    """`count` held-out frames, taken round-robin over the sets so every camera kind is in the mix."""
    per_set = [heldout_files(data / name) for name in SOURCE_CLASS_MAP if (data / name).exists()]
    paths = [p for group in zip(*per_set, strict=False) for p in group]
    paths += [p for group in per_set for p in group if p not in paths]
    frames = []
    for path in paths[:count]:
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


if __name__ == "__main__":
    main()
