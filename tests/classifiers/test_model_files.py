"""Model files survive interruption: the baseline is saved as a whole pair or not at all (setup retrains what is
left), and a damaged embedding cache is rebuilt rather than loaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from classifiers import BaselineClassifier
from classifiers.knowledge import FloatArray, cached_embeddings


@pytest.fixture(scope="module")
def trained(baseline_model_file: Path) -> BaselineClassifier:
    return BaselineClassifier.load(baseline_model_file)


def _files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def test_a_save_interrupted_while_writing_leaves_the_previous_model_whole(trained: BaselineClassifier,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.joblib"
    trained.save(path)
    before = path.read_bytes()

    def dies_half_way(_value: Any, file: Any) -> None:
        file.write(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(joblib, "dump", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        trained.save(path)
    assert _files(tmp_path) == {"model.joblib", "model.card.json"}  # no partial file left behind either
    assert path.read_bytes() == before and BaselineClassifier.read_card(path) == trained.card


def test_a_save_interrupted_between_the_renames_leaves_no_card(trained: BaselineClassifier, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.joblib"
    trained.save(path)
    renames: list[tuple[Any, Any]] = []
    replace = os.replace

    def dies_before_the_card(source: Any, target: Any) -> None:
        renames.append((source, target))
        if len(renames) == 2:
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(os, "replace", dies_before_the_card)
    with pytest.raises(KeyboardInterrupt):
        trained.save(path)
    assert [Path(target).name for _source, target in renames] == ["model.joblib", "model.card.json"]
    assert not path.with_suffix(".card.json").exists()
    with pytest.raises(FileNotFoundError):
        BaselineClassifier.read_card(path)


class _Encoder:
    name = "test-encoder"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> FloatArray:
        self.calls += 1
        return np.ones((len(texts), 4), dtype=np.float32)


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY garbage", None])
def test_a_damaged_embedding_cache_is_rebuilt(damage: bytes | None, tmp_path: Path) -> None:
    encoder = _Encoder()
    texts = ["路灯不亮", "噪音扰民", "积水"]
    first = cached_embeddings(encoder, texts, texts, tmp_path, "kb-index")
    [cache] = list(tmp_path.iterdir())  # the cache alone: no temporary file left beside it
    assert cache.suffix == ".npy"
    if damage is None:  # a whole file of the wrong shape
        np.save(cache, np.ones((2, 4), dtype=np.float32))
    else:  # cut short
        cache.write_bytes(damage)
    again = cached_embeddings(encoder, texts, texts, tmp_path, "kb-index")
    assert encoder.calls == 2 and np.array_equal(again, first)
    assert np.array_equal(np.load(cache), first)  # and written back whole
    cached_embeddings(encoder, texts, texts, tmp_path, "kb-index")
    assert encoder.calls == 2
