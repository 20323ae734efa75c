"""Safe, versioned, verified checkpoint files.

A checkpoint is one ``.npz`` written with ``allow_pickle=False``: every numpy
array of the state under its path (``detector/trees/feature``), plus a JSON
manifest (stored as a uint8 array) holding the scalars, the format version,
what the state belongs to, and a SHA-256 over every array and the manifest.
Loading never unpickles, recomputes the digest, and refuses a corrupt,
foreign or future-version file with ``CheckpointError``. Writes are atomic:
temporary file, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import CheckpointError

FORMAT = "auditwatch-checkpoint"
VERSION = 1
MANIFEST = "__manifest__"
ARRAY_REF = "__array__"


def flatten(state: Any, arrays: dict[str, np.ndarray], path: str = "") -> Any:
    """Replace every ndarray in a nested dict/list by a reference; collect the arrays."""
    if isinstance(state, np.ndarray):
        if state.dtype == object:
            raise CheckpointError(f"{path}: object arrays cannot be checkpointed safely")
        arrays[path] = state
        return {ARRAY_REF: path}
    if isinstance(state, dict):
        return {str(k): flatten(v, arrays, f"{path}/{k}") for k, v in state.items()}
    if isinstance(state, list | tuple):
        return [flatten(v, arrays, f"{path}/{i}") for i, v in enumerate(state)]
    if isinstance(state, np.generic):
        return state.item()
    if state is None or isinstance(state, bool | int | float | str):
        return state
    raise CheckpointError(f"{path}: {type(state).__name__} is not checkpointable")


def unflatten(meta: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(meta, dict):
        if set(meta) == {ARRAY_REF}:
            return arrays[meta[ARRAY_REF]]
        return {k: unflatten(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [unflatten(v, arrays) for v in meta]
    return meta


def _digest(arrays: dict[str, np.ndarray], body: bytes) -> str:
    h = hashlib.sha256(body)
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any], owner: dict[str, str]) -> None:
    """Write ``state`` for ``owner`` (e.g. model name/version, topic, partition) atomically."""
    arrays: dict[str, np.ndarray] = {}
    body_obj = {
        "format": FORMAT,
        "version": VERSION,
        "owner": owner,
        "state": flatten(state, arrays),
    }
    body = json.dumps(body_obj, allow_nan=True, separators=(",", ":")).encode()
    manifest = {"digest": _digest(arrays, body), "body": body.decode()}
    payload = {k.lstrip("/"): v for k, v in arrays.items()}
    payload[MANIFEST] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, **payload)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path, owner: dict[str, str]) -> dict[str, Any]:
    """The verified state in ``path``; CheckpointError if corrupt, foreign or unknown."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            loaded = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from None
    try:
        manifest = json.loads(loaded.pop(MANIFEST).tobytes())
        body = manifest["body"].encode()
        meta = json.loads(body)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: no valid manifest ({exc})") from None
    arrays = {"/" + k: v for k, v in loaded.items()}
    if manifest.get("digest") != _digest(arrays, body):
        raise CheckpointError(f"{path}: checksum mismatch (corrupt or tampered)")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        found = f"{meta.get('format')} v{meta.get('version')}"
        raise CheckpointError(f"{path}: format {found}, expected {FORMAT} v{VERSION}")
    if meta.get("owner") != owner:
        raise CheckpointError(f"{path}: belongs to {meta.get('owner')}, not {owner}")
    return unflatten(meta["state"], arrays)
