"""Finding damaged store data: chunk files that are missing or do not decode.

Zarr reads a missing chunk file as its fill value (zeros), so a deleted chunk would pass as
data. facesynth writes every chunk, even an all-fill one (`write_empty_chunks`, set in
frame_store.py), and says so in the store marker ("chunk_files": "always"); in such a store
a chunk whose frames the group's `ok` flags call good, but which has no file, is damage.
Both kinds are raised as StoreDamaged naming the array, the chunk and its frames.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr

from facesynth.errors import StoreDamaged
from facesynth.input_files import InputFileError
from facesynth.store.zarr_limits import read_node_metadata


def repair_hint(store_path: str | Path) -> str:
    return (f"run `facesynth store check {store_path}` (it lists every damaged chunk and clears their "
            "progress), then run the graph again, without --restart, to rewrite them")


def chunk_file(store_path: str | Path, name: str, arr: zarr.Array, index: int) -> Path:
    """The file holding chunk `index` (along the frame axis) of array `name`."""
    coords = (int(index),) + (0,) * (arr.ndim - 1)
    return Path(store_path) / name / arr.metadata.encode_chunk_key(coords)


def chunk_frames_of(arr: zarr.Array, index: int) -> tuple[int, int]:
    cf = int(arr.chunks[0])
    return index * cf, min((index + 1) * cf, int(arr.shape[0]))


def present_chunks(path: Path, name: str, arr: zarr.Array) -> list[int]:
    """Indices of the chunks of `name` that have a file (listed from its c/ folder, so the work is
    bounded by what is on disk, not by the shape its metadata declares)."""
    n = n_chunks(arr)
    try:
        entries = [e.name for e in os.scandir(path / name / "c")]
    except OSError:
        return []
    found = sorted(int(e) for e in entries if e.isdigit() and len(e) < 12 and int(e) < n)
    return [i for i in found if os.path.lexists(chunk_file(path, name, arr, i))]


def n_chunks(arr: zarr.Array) -> int:
    """Chunks along the frame axis."""
    return -(-int(arr.shape[0]) // int(arr.chunks[0]))


def damaged(store_path: str | Path, name: str, arr: zarr.Array, index: int, problem: str) -> StoreDamaged:
    a, b = chunk_frames_of(arr, index)
    return StoreDamaged(f"store {store_path}: array '{name}' chunk {index} (frames {a}-{b}) {problem}; "
                        + repair_hint(store_path), array=name, chunk=index, frames=(a, b))


def undecodable_chunk(store_path: str | Path, name: str, arr: zarr.Array, start: int, stop: int,
                      exc: BaseException) -> StoreDamaged:
    """After reading [start, stop) of `arr` failed: find the chunk that does not decode."""
    cf = int(arr.chunks[0])
    for index in range(start // cf, -(-stop // cf)):
        a, b = chunk_frames_of(arr, index)
        try:
            arr[a:b]
        except Exception as chunk_exc:  # noqa: BLE001 - any codec error means this chunk is bad
            return damaged(store_path, name, arr, index, f"does not decode ({type(chunk_exc).__name__}: {chunk_exc})")
    return StoreDamaged(f"store {store_path}: array '{name}' frames {start}-{stop} cannot be read "
                        f"({type(exc).__name__}: {exc}); " + repair_hint(store_path), array=name,
                        frames=(start, stop))


def missing_chunks(store_path: str | Path, name: str, arr: zarr.Array, ok: np.ndarray, start: int) -> list[int]:
    """Chunks of `arr` holding a frame of [start, start+len(ok)) flagged ok, but with no file."""
    cf = int(arr.chunks[0])
    out = []
    for index in range(start // cf, -(-(start + len(ok)) // cf)):
        a, b = chunk_frames_of(arr, index)
        if ok[max(a, start) - start:b - start].any() and not chunk_file(store_path, name, arr, index).exists():
            out.append(index)
    return out


def array_dirs(root: Path) -> tuple[list[str], dict[str, str]]:
    """Array names under the store, and {name: why} of the nodes whose zarr.json cannot be read
    (not a regular file, over its size limit, not JSON) and of the folders that are links; walked
    on disk (links not followed), no Zarr node is opened."""
    arrays, broken = [], {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts and rel.parts[0] == "_progress":
            dirnames[:] = []
            continue
        for d in [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:  # never walked into
            if rel.parts or d != "_progress":
                broken["/".join((*rel.parts, d))] = (f"it is a link to {os.readlink(Path(dirpath) / d)}, not a "
                                                     "folder facesynth wrote (it writes no links in a store)")
        if "zarr.json" not in filenames + dirnames or not rel.parts:
            continue
        name = "/".join(rel.parts)
        try:
            meta = read_node_metadata(root, name)
        except (OSError, InputFileError) as exc:
            broken[name] = str(exc)
            dirnames[:] = []
            continue
        if meta.get("node_type") == "array":
            arrays.append(name)
            dirnames[:] = []
    return sorted(arrays), dict(sorted(broken.items()))
