"""Text path speed: the fused e5 ONNX classifier (onnxruntime) vs plain sentence-transformers (PyTorch) on the
same raw hotline messages and machine: transcripts/s and p50/p99 latency per call, and their ratio."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.data import read_labelled_csv
from classifiers.e5_runtime import OnnxIntentModel
from classifiers.e5_setup import e5_model_path
from hotline.settings import get_settings


def _measure(name: str, run: Callable[[list[str]], Any], texts: list[str], batch: int) -> dict[str, Any]:
    run(texts[:batch])  # warm-up
    latencies = []
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        t0 = time.perf_counter()
        run(texts[start:start + batch])
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"path": name, "batch": batch, "texts_per_s": len(texts) / total,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--no-torch", action="store_true", help="Only the ONNX path.")
    args = parser.parse_args()
    settings = get_settings()
    rows = [r for r in read_labelled_csv(settings.hotline_data_dir / "messages_train.csv") if r.form == "raw"]
    texts = [r.text for r in rows][: args.texts]
    onnx = OnnxIntentModel(e5_model_path(settings.models_dir))
    lengths = [len(onnx.tokenizer.encode("query: " + t).ids) for t in texts]
    print(f"{len(texts)} raw messages, tokens mean {np.mean(lengths):.0f} / max {max(lengths)}, "
          f"providers {onnx.session.get_providers()}, cpu count {os.cpu_count()}")

    def onnx_run(batch: list[str]) -> Any:
        onnx.batch_size = len(batch)
        return onnx.predict(batch)

    runners: dict[str, Callable[[list[str]], Any]] = {"onnx": onnx_run}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_torch:
            runners["sentence-transformers"] = _torch_runner(Path(tmp))
        results = [_measure(name, run, texts, int(b)) for b in args.batches.split(",") for name, run in runners.items()]
    for result in results:
        print(json.dumps(result))
    for batch in args.batches.split(","):
        by_path = {r["path"]: r for r in results if r["batch"] == int(batch)}
        if len(by_path) == 2:
            ratio = by_path["onnx"]["texts_per_s"] / by_path["sentence-transformers"]["texts_per_s"]
            print(f"batch {batch}: ONNX / PyTorch throughput = {ratio:.2f}x")


def _torch_runner(work: Path) -> Callable[[list[str]], Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    from classifiers.e5_build import build_sentence_transformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = SentenceTransformer(str(build_sentence_transformer(work / "st")), device="cpu")

    def run(batch: list[str]) -> Any:
        with torch.inference_mode():
            return model.encode(batch, prompt_name="query", batch_size=len(batch))

    return run


if __name__ == "__main__":
    main()
