from pathlib import Path

import numpy as np
import pytest

from detector.errors import CheckpointError
from detector.state.checkpoint import load_checkpoint, save_checkpoint

OWNER = {"model": "m", "version": "1", "topic": "t", "partition": "0"}


def state() -> dict:
    return {
        "offset": 42,
        "detector": {"feature": np.arange(6, dtype=np.int32), "thr": np.linspace(0, 1, 6)},
        "calibration": {"ring": np.ones(3), "seen": 3, "ready": True},
        "profiles": [{"n": 1, "rates": [0.5, float("nan")]}, {"n": 2, "rates": [1.0, 2.0]}],
        "name": "x",
    }


def test_round_trip_preserves_arrays_and_scalars(tmp_path: Path) -> None:
    path = tmp_path / "ck.npz"
    save_checkpoint(path, state(), OWNER)
    back = load_checkpoint(path, OWNER)
    assert back["offset"] == 42 and back["name"] == "x"
    assert back["detector"]["feature"].dtype == np.int32
    assert np.array_equal(back["detector"]["thr"], state()["detector"]["thr"])
    assert back["calibration"]["ready"] is True
    assert np.isnan(back["profiles"][0]["rates"][1])


def test_corruption_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ck.npz"
    save_checkpoint(path, state(), OWNER)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, OWNER)


def test_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ck.npz"
    save_checkpoint(path, state(), OWNER)
    with pytest.raises(CheckpointError, match="belongs to"):
        load_checkpoint(path, {**OWNER, "partition": "1"})


def test_pickle_is_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, __manifest__=np.array([{"x": 1}], dtype=object))  # needs pickle to read
    with pytest.raises(CheckpointError):
        load_checkpoint(path, OWNER)


def test_object_state_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not checkpointable"):
        save_checkpoint(tmp_path / "x.npz", {"bad": object()}, OWNER)


def test_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "ck.npz"
    save_checkpoint(path, state(), OWNER)
    assert not (tmp_path / "ck.npz.tmp").exists()
    save_checkpoint(path, {**state(), "offset": 43}, OWNER)
    assert load_checkpoint(path, OWNER)["offset"] == 43
