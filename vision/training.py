"""Training the camera detector: a unified YOLO dataset from the shared sets, ultralytics training, ONNX export.

The dataset assembly and the held-out split are pure Python (no ultralytics) so that evaluation can reproduce the
split in the project venv. Training and export import ultralytics lazily; they need the training venv (torch,
ultralytics, onnx), see vision/models/TRAINING_REPORT.md.

Split rule: an image is held out when sha1("<set>/<group>") falls in the first `fraction` of the hash space, where
<group> is the file name before Roboflow's '.rf.' (augmented copies of one photo share it, so copies never straddle
train and val). The rule depends on file names only, so it is stable when images are added.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision.evaluation import IMAGE_SUFFIXES, read_class_names

log = logging.getLogger(__name__)

HELDOUT_FRACTION = 0.15
# The project's detector classes (vision/detector.py LABEL_KINDS and VEHICLE_LABELS); order = class ids.
UNIFIED_CLASSES: tuple[str, ...] = (
    "garbage", "garbage_bin", "overflow", "pothole", "fire", "smoke", "car", "bus", "truck", "motorcycle", "bike",
)
# Shared set (folder under shared/data/vision) -> its class names (lower-cased) -> unified class.
SOURCE_CLASS_MAP: dict[str, dict[str, str]] = {
    "garbage": {"garbage": "garbage", "garbage_bin": "garbage_bin", "overflow": "overflow"},
    "pothole": {"pothole": "pothole"},
    "fire_smoke": {"fire": "fire", "smoke": "smoke"},
    "vehicles_trafficcam": {"bike": "bike", "bus": "bus", "car": "car", "truck": "truck"},
    "vehicles_web": {"ambulance": "car", "bus": "bus", "car": "car", "motorcycle": "motorcycle", "truck": "truck"},
}
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)


# --- split -----------------------------------------------------------------------------------------------------


def group_key(file_name: str) -> str:
    """'000002_jpg.rf.0bf2e7….jpg' -> '000002_jpg': Roboflow copies of one photo share the part before '.rf.'."""
    name = Path(file_name).name
    return name.split(".rf.", 1)[0] if ".rf." in name else Path(name).stem


def is_heldout(source: str, file_name: str, fraction: float = HELDOUT_FRACTION) -> bool:
    digest = hashlib.sha1(f"{source}/{group_key(file_name)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def list_images(source_dir: Path) -> list[Path]:
    return sorted(p for p in (source_dir / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def heldout_files(source_dir: Path, fraction: float = HELDOUT_FRACTION) -> list[Path]:
    """The held-out images of one shared set (folder with images/, labels/, classes.yaml)."""
    return [p for p in list_images(source_dir) if is_heldout(source_dir.name, p.name, fraction)]


# --- dataset assembly ------------------------------------------------------------------------------------------


@dataclass
class AssembledDataset:
    root: Path
    data_yaml: Path
    images: dict[str, Counter[str]] = field(default_factory=dict)  # split -> source -> images
    boxes: dict[str, Counter[str]] = field(default_factory=dict)  # split -> unified class -> boxes

    def summary(self) -> str:
        lines = []
        for split in ("train", "val"):
            imgs = self.images.get(split, Counter())
            lines.append(f"{split}: {sum(imgs.values())} images {dict(sorted(imgs.items()))}")
            lines.append(f"  boxes {dict(sorted(self.boxes.get(split, Counter()).items()))}")
        return "\n".join(lines)


def assemble_dataset(shared_vision_dir: Path, out_dir: Path, fraction: float = HELDOUT_FRACTION,
                     sources: list[str] | None = None) -> AssembledDataset:
    """Build `out_dir/{train,val}/{images,labels}` (images symlinked, labels remapped) plus data.yaml.

    Each split folder also gets classes.yaml, so `out_dir/val` can be evaluated directly.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    result = AssembledDataset(out_dir, out_dir / "data.yaml")
    for split in ("train", "val"):
        (out_dir / split / "images").mkdir(parents=True)
        (out_dir / split / "labels").mkdir(parents=True)
        _write_names(out_dir / split / "classes.yaml", UNIFIED_CLASSES)
        result.images[split], result.boxes[split] = Counter(), Counter()
    for source in sources or list(SOURCE_CLASS_MAP):
        source_dir = shared_vision_dir / source
        remap = _class_remap(source, read_class_names(source_dir))
        for image in list_images(source_dir):
            split = "val" if is_heldout(source, image.name, fraction) else "train"
            target = out_dir / split / "images" / f"{source}__{image.name}"
            target.symlink_to(image.resolve())
            lines = _remapped_labels(source_dir / "labels" / f"{image.stem}.txt", remap)
            (out_dir / split / "labels" / f"{target.stem}.txt").write_text("".join(lines), encoding="utf-8")
            result.images[split][source] += 1
            result.boxes[split].update(UNIFIED_CLASSES[int(line.split()[0])] for line in lines)
        log.info("assembled %s: %s", source, {s: result.images[s][source] for s in ("train", "val")})
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(UNIFIED_CLASSES))
    result.data_yaml.write_text(f"path: {out_dir.resolve()}\ntrain: train/images\nval: val/images\nnames:\n{names}",
                                encoding="utf-8")
    return result


def compact_dataset(dataset_dir: Path, out_dir: Path, max_side: int = 480, quality: int = 60,
                    val_every: int = 6) -> Path:
    """A small copy of an assembled dataset to carry to a GPU machine (the device tool takes 64 MiB).

    Images are shrunk to `max_side` and stored as WebP; the validation split keeps every `val_every`-th image
    (enough for ultralytics' per-epoch figures; the full held-out split is evaluated afterwards, at full size).
    """
    from PIL import Image

    shutil.rmtree(out_dir, ignore_errors=True)
    for split in ("train", "val"):
        images = list_images(dataset_dir / split)
        if split == "val":
            images = images[::val_every]
        (out_dir / split / "images").mkdir(parents=True)
        (out_dir / split / "labels").mkdir(parents=True)
        for path in images:
            with Image.open(path) as image:
                small = image.convert("RGB")
                small.thumbnail((max_side, max_side))
                small.save(out_dir / split / "images" / f"{path.stem}.webp", "WEBP", quality=quality)
            label = dataset_dir / split / "labels" / f"{path.stem}.txt"
            if label.exists():
                shutil.copy(label, out_dir / split / "labels" / label.name)
    shutil.copy(dataset_dir / "train" / "classes.yaml", out_dir / "classes.yaml")
    lines = (dataset_dir / "data.yaml").read_text(encoding="utf-8").splitlines()
    (out_dir / "data.yaml").write_text("\n".join(line for line in lines if not line.startswith("path:")) + "\n",
                                       encoding="utf-8")  # no path: ultralytics resolves splits beside the yaml
    return out_dir / "data.yaml"


def _class_remap(source: str, names: list[str]) -> dict[int, int]:
    mapping = SOURCE_CLASS_MAP.get(source)
    if mapping is None:
        raise ValueError(f"unknown vision set {source!r}: known are {sorted(SOURCE_CLASS_MAP)}")
    unknown = [n for n in names if n.lower() not in mapping]
    if unknown:
        raise ValueError(f"{source}: classes {unknown} have no unified class")
    return {i: UNIFIED_CLASSES.index(mapping[n.lower()]) for i, n in enumerate(names)}


def _remapped_labels(label_file: Path, remap: dict[int, int]) -> list[str]:
    if not label_file.exists():
        return []  # a negative image
    lines = []
    for raw in label_file.read_text(encoding="utf-8").splitlines():
        parts = raw.split()
        if len(parts) == 5:
            lines.append(" ".join([str(remap[int(parts[0])]), *parts[1:]]) + "\n")
    return lines


def _write_names(path: Path, names: tuple[str, ...]) -> None:
    path.write_text("names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)), encoding="utf-8")


# --- ultralytics (training venv only) ---------------------------------------------------------------------------


def _lazy(module: str) -> Any:
    """Import a training-only module (torch, ultralytics) when needed; untyped on purpose."""
    import importlib

    return importlib.import_module(module)


def configure_ultralytics_offline(config_dir: Path) -> None:
    """Keep ultralytics off the network: offline flag, own config dir, no sync, local fonts. Call before training."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    settings_dir = config_dir / "Ultralytics"
    settings_dir.mkdir(parents=True, exist_ok=True)
    font = next((f for f in FONT_CANDIDATES if f.exists()), None)
    if font is None:
        matplotlib = _lazy("matplotlib")

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (settings_dir / name).exists():
            shutil.copy(font, settings_dir / name)
    _lazy("ultralytics").settings.update({
        "sync": False, "runs_dir": str(config_dir.parent / "runs"), "clearml": False, "comet": False, "dvc": False,
        "mlflow": False, "raytune": False, "tensorboard": False, "wandb": False,
    })


def init_from_larger(small_yaml: str, large_weights: Path, target: Path, nc: int = len(UNIFIED_CLASSES)) -> Path:
    """Initialise a small YOLOv8 (e.g. yolov8n) from a larger trained one of the same depth (e.g. yolov8s).

    "Weight selection" (Xu et al., 2023, Initializing Models with Larger Ones): every tensor of the small model takes
    every second channel of the large one's tensor of the same name where the large one is exactly twice as wide
    (stride-2 selection keeps C2f chunks and Concat segments aligned, since each segment halves), and conv weights
    whose inputs were halved are scaled by 2 to keep activations in range. Tensors that do not fit (the class
    outputs) keep their fresh initialisation. Returns `target`, a checkpoint ultralytics trains from.
    """
    torch = _lazy("torch")
    tasks = _lazy("ultralytics.nn.tasks")

    large, _ = tasks.load_checkpoint(str(large_weights))
    large_state = large.state_dict()
    small = tasks.DetectionModel(small_yaml, nc=nc, verbose=False)
    state = small.state_dict()
    copied = 0
    for name, tensor in state.items():
        source = large_state.get(name)
        if source is None or source.dim() != tensor.dim():
            continue
        if not all(s in (t, 2 * t) for s, t in zip(source.shape, tensor.shape, strict=True)):
            continue
        index = tuple(slice(None, None, s // t) for s, t in zip(source.shape, tensor.shape, strict=True))
        selected = source[index].clone()
        if tensor.dim() == 4 and source.shape[1] == 2 * tensor.shape[1]:
            selected = selected * 2.0
        state[name] = selected.to(tensor.dtype)
        copied += 1
    small.load_state_dict(state)
    small.names = dict(enumerate(UNIFIED_CLASSES))
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": small, "train_args": {}, "epoch": -1}, target)
    log.info("initialised %s from %s: %d/%d tensors selected", small_yaml, large_weights.name, copied, len(state))
    return target


def recalibrate_batchnorm(weights: Path, image_dir: Path, target: Path, imgsz: int = 320, images: int = 256,
                          batch: int = 16) -> Path:
    """Re-estimate BatchNorm running statistics of a trained .pt on training images (no gradients, no labels).

    A weight-selected model drifts fast early on and its running statistics lag behind its weights: in eval mode
    the deeper layers then see activations ~50x off and the detector collapses, while train mode is fine. One pass
    of cumulative averaging over a few hundred images fixes that. Writes a stripped fp16 checkpoint to `target`.
    """
    import numpy as np
    torch = _lazy("torch")
    from PIL import Image

    from vision.detector import _letterbox

    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    model = (checkpoint.get("ema") or checkpoint["model"]).float()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
    paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    paths = paths[:: max(1, len(paths) // images)][:images]
    model.train()
    with torch.no_grad():
        for start in range(0, len(paths), batch):
            tensors = []
            for path in paths[start:start + batch]:
                with Image.open(path) as image:
                    tensors.append(_letterbox(image.convert("RGB"), imgsz).tensor)
            model(torch.from_numpy(np.stack(tensors)))
    for norm in norms:
        norm.momentum = 0.03
    model.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "ema": None, "optimizer": None, "epoch": -1,
                "train_args": checkpoint.get("train_args", {}), "date": checkpoint.get("date")}, target)
    log.info("recalibrated %d BatchNorm layers of %s on %d images -> %s", len(norms), weights.name, len(paths), target)
    return target


@dataclass(frozen=True)
class TrainConfig:
    model: str = "yolov8n.yaml"  # a model yaml (from scratch) or a .pt to transfer from
    epochs: int = 20
    imgsz: int = 320
    batch: int = 16
    workers: int = 2
    freeze: int | None = None  # freeze the first N layers (10 = the YOLOv8 backbone)
    cache: str = "ram"
    seed: int = 0
    device: str = "cpu"  # "0" trains on the first GPU, with mixed precision
    extra: dict[str, Any] = field(default_factory=dict)  # any other ultralytics train argument


def train_detector(data_yaml: Path, runs_dir: Path, name: str, config: TrainConfig = TrainConfig(),
                   config_dir: Path | None = None) -> Path:
    """Train with ultralytics (CPU by default, `config.device="0"` for a GPU); returns the best .pt."""
    configure_ultralytics_offline(config_dir or runs_dir.parent / "ultralytics-config")
    model = _lazy("ultralytics").YOLO(config.model)
    args: dict[str, Any] = {
        "data": str(data_yaml), "epochs": config.epochs, "imgsz": config.imgsz, "batch": config.batch,
        "workers": config.workers, "cache": config.cache, "seed": config.seed, "device": config.device,
        "amp": config.device != "cpu",
        "project": str(runs_dir), "name": name, "exist_ok": True, "plots": False, "deterministic": False,
        "val": True, "verbose": True,
    }
    if config.freeze is not None:
        args["freeze"] = config.freeze
    args.update(config.extra)
    started = time.monotonic()
    log.info("training %s on %s: %s", config.model, data_yaml, args)
    model.train(**args)
    log.info("training took %.1f min", (time.monotonic() - started) / 60)
    best = runs_dir / name / "weights" / "best.pt"
    if not best.exists():
        raise RuntimeError(f"training finished without {best}")
    return best


def export_onnx(weights: Path, target: Path, imgsz: int = 320, opset: int = 17, dynamic: bool = True,
                config_dir: Path | None = None) -> Path:
    """Export a trained .pt to ONNX (dynamic batch) at `target`; onnxslim simplification only when installed."""
    import importlib.util

    configure_ultralytics_offline(config_dir or weights.parent.parent.parent.parent / "ultralytics-config")
    simplify = importlib.util.find_spec("onnxslim") is not None
    model = _lazy("ultralytics").YOLO(str(weights))
    exported = Path(model.export(format="onnx", imgsz=imgsz, opset=opset, dynamic=dynamic, simplify=simplify,
                                 half=False, nms=False, device="cpu"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(exported, target)
    log.info("exported %s -> %s (%.1f MB, opset %d, dynamic=%s, simplify=%s)", weights, target,
             target.stat().st_size / 1e6, opset, dynamic, simplify)
    return target


def main() -> None:
    """`python -m vision.training [--shared DIR] [--out DIR] [--epochs N] ...`: assemble, train, export."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/vision")
    parser.add_argument("--work", type=Path, default=Path("/work/scratch/vision"))
    parser.add_argument("--name", default="urban")
    parser.add_argument("--model", default="yolov8n.yaml")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--freeze", type=int, default=None)
    parser.add_argument("--init-from", type=Path, default=None,
                        help="larger YOLOv8 .pt to initialise --model (a yaml) from by weight selection")
    parser.add_argument("--hours", type=float, default=None, help="time box: ultralytics fits the schedule to it")
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--mosaic", type=float, default=0.0, help="short CPU runs converge faster without mosaic")
    parser.add_argument("--close-mosaic", type=int, default=0, help="train the last N epochs without mosaic")
    parser.add_argument("--fraction", type=float, default=1.0, help="train on this fraction (timing runs)")
    parser.add_argument("--recalibrate", action="store_true", help="re-estimate BatchNorm statistics before export")
    parser.add_argument("--export", type=Path, default=None, help="write the ONNX here after training")
    parser.add_argument("--assemble-only", action="store_true")
    parser.add_argument("--compact-to", type=Path, default=None,
                        help="after assembling, write a small WebP copy here (for a GPU machine) and stop")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="an assembled dataset folder (with data.yaml) to train on instead of assembling one")
    parser.add_argument("--device", default="cpu", help='"cpu", or a GPU index such as "0"')
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes (ultralytics uses 0 on CPU)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.dataset:
        data_yaml = args.dataset / "data.yaml"
    else:
        dataset = assemble_dataset(args.shared, args.work / "dataset")
        log.info("dataset:\n%s", dataset.summary())
        data_yaml = dataset.data_yaml
    if args.compact_to:
        log.info("compact copy: %s", compact_dataset(data_yaml.parent, args.compact_to))
        return
    if args.assemble_only:
        return
    model = args.model
    if args.init_from:
        model = str(init_from_larger(args.model, args.init_from, args.work / "weights" / f"{args.name}-init.pt"))
    extra: dict[str, Any] = {"warmup_epochs": args.warmup_epochs, "mosaic": args.mosaic,
                             "close_mosaic": args.close_mosaic}
    if args.fraction < 1:
        extra["fraction"] = args.fraction
    if args.hours:
        extra["time"] = args.hours
    config = TrainConfig(model=model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, freeze=args.freeze,
                         workers=args.workers, device=args.device, extra=extra)
    best = train_detector(data_yaml, args.work / "runs", args.name, config, args.work / "cfg")
    final = best
    if args.recalibrate:  # helps a weight-selected model stopped after an epoch or two, not after four
        final = recalibrate_batchnorm(best, data_yaml.parent / "train" / "images",
                                      args.work / "weights" / f"{args.name}.pt", imgsz=args.imgsz)
    if args.export:
        export_onnx(final, args.export, imgsz=args.imgsz, config_dir=args.work / "cfg")


if __name__ == "__main__":
    main()
