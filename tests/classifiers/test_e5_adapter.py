"""The fine-tuning adapter merges into the rebuilt e5 weights exactly, and a wrong adapter is refused by name."""

from pathlib import Path

import numpy as np
import pytest

from classifiers.e5_build import adapted_weights, adapter_arrays
from classifiers.e5_setup import DEFAULT_HEAD

RNG = np.random.default_rng(0)
BASE = {"encoder.layer.0.attention.self.query.weight": RNG.normal(size=(6, 4)).astype(np.float32),
        "encoder.layer.0.attention.self.query.bias": RNG.normal(size=6).astype(np.float32)}


def test_low_rank_pairs_add_b_times_a_and_deltas_add_themselves() -> None:
    a, b = RNG.normal(size=(2, 4)), RNG.normal(size=(6, 2))
    delta = RNG.normal(size=6)
    adapter = {"lowrank/encoder.layer.0.attention.self.query.weight/A": a,
               "lowrank/encoder.layer.0.attention.self.query.weight/B": b,
               "delta/encoder.layer.0.attention.self.query.bias": delta, "W0": np.zeros((7, 4))}
    changed = adapted_weights(BASE, adapter)
    assert set(changed) == set(BASE)
    np.testing.assert_allclose(changed["encoder.layer.0.attention.self.query.weight"],
                               BASE["encoder.layer.0.attention.self.query.weight"] + b @ a, rtol=1e-5)
    np.testing.assert_allclose(changed["encoder.layer.0.attention.self.query.bias"],
                               BASE["encoder.layer.0.attention.self.query.bias"] + delta, rtol=1e-5)


def test_an_adapter_for_another_model_is_refused_naming_the_entry() -> None:
    with pytest.raises(ValueError, match=r"encoder\.layer\.9"):
        adapted_weights(BASE, {"delta/encoder.layer.9.output.dense.bias": np.zeros(6)})
    with pytest.raises(ValueError, match="shape"):
        adapted_weights(BASE, {"delta/encoder.layer.0.attention.self.query.bias": np.zeros(5)})


def test_the_committed_adapter_changes_every_dense_layer_of_all_twelve_blocks() -> None:
    with np.load(Path(DEFAULT_HEAD)) as stored:
        arrays = adapter_arrays(stored)
        assert stored["W0"].shape == (7, 384) and len(stored["labels"]) == 7 and float(stored["T"]) > 0
    pairs = {name.rsplit("/", 1)[0] for name in arrays}
    assert len(pairs) == 12 * 6
    assert all(arrays[f"{p}/A"].shape[0] == arrays[f"{p}/B"].shape[1] == 16 for p in pairs)
    assert all(np.abs(arrays[f"{p}/B"]).max() > 0 for p in pairs)  # trained, not the zero initialisation
