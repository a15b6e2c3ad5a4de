"""The Zarr v3 frame store: one directory holding every stage's arrays for one dataset.

Layout: arrays named "<group>/<name>" (e.g. raw/color, crop/depth), frame axis first,
chunked by `chunk_frames` frames so that one writer owns whole chunks (concurrent writers
into parts of one chunk would lose data). Arrays are created with a frame *capacity*; how
many frames a stage really holds is told by the progress log (store/progress.py).
Dataset attributes (capture settings, calibration, depth normalisation) live on the root.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from facesynth.errors import StoreDamaged, StoreError
from facesynth.store.checked_zarr import open_root
from facesynth.store.lock import open_guard
from facesynth.store.damage import (array_dirs, chunk_file, damaged, missing_chunks, present_chunks,
                                    undecodable_chunk)
from facesynth.store.marker import new_store_id, read_marker, write_marker
from facesynth.store.zarr_limits import MAX_CHUNK_BYTES, DATA_TYPES

# write every chunk, even one equal to the fill value: then a missing chunk file is damage
zarr.config.set({"array.write_empty_chunks": True})
SPARSE_READ_CHUNKS = 64  # a read spanning more chunks lists the ones on disk and reads only those


def _open_root(p: Path, mode: str) -> zarr.Group:
    """The root group, its zarr.json checked first (checked_zarr.py); a damaged or refused root
    zarr.json is a StoreDamaged naming it, not a traceback."""
    try:
        return open_root(p, mode)
    except (StoreDamaged, OSError, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        if mode != "r" and not (p / "zarr.json").exists():
            raise
        why = str(exc) if isinstance(exc, StoreDamaged) else f"{type(exc).__name__}: {exc}"
        raise StoreDamaged(f"store {p}: its root metadata {p / 'zarr.json'} is damaged or refused "
                           f"({why}); the arrays may be intact: `facesynth store check {p}` "
                           "says what it finds, else start over with --restart", array="zarr.json") from None


class FrameStore:
    """Chunk-aligned writes and read-only reads of per-stage frame arrays."""

    def __init__(self, root: zarr.Group, path: Path, mode: str):
        self._root = root
        self.path = path
        self.mode = mode
        self._arrays: dict[str, zarr.Array] = {}  # opened array handles (metadata read once)
        try:  # stores from before markers may have left all-fill chunks unwritten: no check there
            marker = read_marker(path)
        except StoreError:  # a damaged marker: `store check` reports and rewrites it
            marker = None
        self.checks_chunks = bool(marker and marker.get("chunk_files") == "always")

    # ---- opening -----------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, chunk_frames: int = 8, attrs: dict | None = None) -> "FrameStore":
        """Create the store if absent (keeping what is there), recording chunk_frames."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        marker = read_marker(p)
        legacy = (p / "zarr.json").exists() and marker is None
        root = _open_root(p, "a")
        have = root.attrs.get("chunk_frames")
        if have is not None and int(have) != int(chunk_frames):
            raise StoreError(
                f"store {p} was written with chunk_frames={have}, not {chunk_frames}; "
                "use the same value or --restart"
            )
        if have is None:
            root.attrs["chunk_frames"] = int(chunk_frames)
        if attrs:
            root.attrs.update(attrs)
        # the id is in the root's attributes and in the marker: a marker alone does not make a store
        store_id = marker["store_id"] if marker else root.attrs.get("store_id") or new_store_id()
        if root.attrs.get("store_id") is None:
            root.attrs["store_id"] = store_id
        write_marker(p, new_store=not legacy, store_id=store_id)  # kept if present
        return cls(root, p, "a")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "a") -> "FrameStore":
        p = Path(path)
        if not (p / "zarr.json").exists():
            raise StoreError(f"no frame store at {p} (run a capture graph first, or check the path)")
        root = _open_root(p, "r" if mode == "r" else "a")
        return cls(root, p, mode)

    # ---- dataset attributes ----------------------------------------------------------
    @property
    def chunk_frames(self) -> int:
        return int(self._root.attrs.get("chunk_frames", 8))

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes as they are on disk now (other processes may have added some)."""
        return dict(_open_root(self.path, "r").attrs)

    def update_attrs(self, **values: Any) -> None:
        """Merge into the root attributes as they are on disk now (zarr writes its whole cached
        view, so merging into a stale handle would wipe what other processes wrote since)."""
        self._check_writable()
        with open_guard(self.path / ".attrs.lock") as lock:  # one read-merge-write at a time
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._root = _open_root(self.path, "a")
            self._root.attrs.update(values)

    # ---- arrays ------------------------------------------------------------------
    def _member(self, name: str) -> zarr.Array | zarr.Group:
        """`name` from the root: KeyError if absent; StoreDamaged if its metadata does not parse."""
        try:
            return self._root[name]
        except (KeyError, StoreDamaged):  # absent; refused by its checks (checked_zarr.py), which name it
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged zarr.json of the array or its group
            raise StoreDamaged(f"store {self.path}: the metadata of '{name}' (its zarr.json) is damaged "
                               f"({type(exc).__name__}: {exc}); `facesynth store check {self.path}` removes it "
                               "and clears the progress of its stage, a rerun rewrites it", array=name) from None

    def has(self, name: str) -> bool:
        if name in self._arrays:
            return True
        try:
            self._member(name)
            return True
        except KeyError:
            return False

    def names(self) -> list[str]:
        """Every array in the store as 'group/name', sorted (walked on disk, each zarr.json read
        within its limits; none is opened)."""
        arrays, broken = array_dirs(self.path)
        if broken:
            name, why = next(iter(broken.items()))
            raise StoreDamaged(f"store {self.path}: the metadata (zarr.json) of '{name}' is damaged ({why}); "
                               f"`facesynth store check {self.path}` removes it and clears the progress of its "
                               "stage, a rerun rewrites it", array=name)
        return arrays

    def array(self, name: str) -> zarr.Array:
        if name in self._arrays:
            return self._arrays[name]
        try:
            arr = self._member(name)
        except KeyError:
            raise StoreError(f"store {self.path} has no array '{name}' (has: {', '.join(self.names()) or 'none'})") from None
        if not isinstance(arr, zarr.Array):
            raise StoreError(f"'{name}' in {self.path} is a group, not an array")
        self._arrays[name] = arr
        return arr

    def ensure_array(self, name: str, frames: int, frame_shape: tuple[int, ...], dtype: Any,
                     fill_value: Any = 0, attrs: dict | None = None) -> zarr.Array:
        """Create `name` with room for `frames` frames, or open it if an identical one exists.

        Safe when several replicas race to create the same array: the loser opens it.
        """
        self._check_writable()
        shape = (int(frames), *map(int, frame_shape))
        dtype = np.dtype(dtype)
        chunk_bytes = self.chunk_frames * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        if chunk_bytes > MAX_CHUNK_BYTES or dtype.name not in DATA_TYPES:
            raise StoreError(f"array '{name}': chunks of {self.chunk_frames} frames of {shape[1:]} {dtype} "
                             f"({chunk_bytes / 2**30:.1f} GB) are beyond what a store may hold (zarr_limits.py: "
                             f"{MAX_CHUNK_BYTES / 2**30:.0f} GB a chunk, numeric types); use a smaller chunk_frames")
        if not self.has(name):
            try:
                arr = self._root.create_array(
                    name, shape=shape, chunks=(self.chunk_frames, *shape[1:]), dtype=dtype,
                    fill_value=fill_value, overwrite=False,
                )
                if attrs:
                    arr.attrs.update(attrs)
                return arr
            except Exception:  # another writer created it first: fall through and check it
                if not self.has(name):
                    raise
        arr = self.array(name)
        if tuple(arr.shape[1:]) != shape[1:] or arr.dtype != dtype:
            raise StoreError(
                f"array '{name}' in {self.path} has frames of {tuple(arr.shape[1:])} {arr.dtype}, "
                f"not {shape[1:]} {dtype}; use a new store or --restart"
            )
        if arr.shape[0] < shape[0]:
            raise StoreError(f"array '{name}' holds {arr.shape[0]} frames, fewer than the {shape[0]} asked for; "
                             "use --restart or a new store")
        return arr

    def write(self, name: str, start: int, data: np.ndarray) -> None:
        """Write frames [start, start+len(data)); must cover whole chunks (or end the array's data)."""
        self._check_writable()
        arr = self.array(name)
        stop = start + len(data)
        cf = self.chunk_frames
        if start % cf != 0:
            raise StoreError(f"write to '{name}' at frame {start} is not aligned to chunks of {cf} frames")
        if stop > arr.shape[0]:
            raise StoreError(f"write to '{name}' frames {start}-{stop} exceeds its capacity of {arr.shape[0]}")
        arr[start:stop] = np.asarray(data, dtype=arr.dtype)

    def read(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames [start, stop) as a read-only array (copy before editing in place)."""
        arr = self.array(name)
        stop = arr.shape[0] if stop is None else stop
        if start < 0 or stop > arr.shape[0] or start > stop:
            raise StoreError(f"'{name}' has {arr.shape[0]} frames; cannot read {start}-{stop}")
        cf = int(arr.chunks[0])
        present = None
        if -(-stop // cf) - start // cf > SPARSE_READ_CHUNKS:  # many chunks: read only those on disk
            present = [i for i in present_chunks(self.path, name, arr) if start // cf <= i < -(-stop // cf)]
        try:
            out = np.asarray(arr[start:stop]) if present is None else self._read_present(arr, start, stop, present)
        except Exception as exc:  # noqa: BLE001 - a codec error: name the chunk that does not decode
            raise undecodable_chunk(self.path, name, arr, start, stop, exc) from None
        if self.checks_chunks and stop > start:
            self._check_present(name, arr, start, stop, present)
        out.flags.writeable = False
        return out

    @staticmethod
    def _read_present(arr: zarr.Array, start: int, stop: int, present: list[int]) -> np.ndarray:
        """Frames [start, stop), reading only the chunks in `present` (runs of them at once); the
        others hold the fill value, as Zarr would give them. Zarr asks for every chunk of a range,
        about a millisecond each here, so a declared shape far beyond the data would cost minutes."""
        out = np.full((stop - start, *arr.shape[1:]), arr.fill_value, dtype=arr.dtype)
        cf = int(arr.chunks[0])
        i = 0
        while i < len(present):
            j = i
            while j + 1 < len(present) and present[j + 1] == present[j] + 1:
                j += 1
            a, b = max(start, present[i] * cf), min(stop, (present[j] + 1) * cf)
            out[a - start:b - start] = arr[a:b]
            i = j + 1
        return out

    def _check_present(self, name: str, arr: zarr.Array, start: int, stop: int,
                       present: list[int] | None = None) -> None:
        """Raise StoreDamaged if a chunk of [start, stop) whose frames are flagged ok has no file
        (Zarr would have returned fill values for it). Costs a stat per chunk (a listing, for a read
        of many); the ok flags are read only for a chunk without a file. Writers write a chunk's
        `<group>/ok` last, so a reader meeting a chunk another replica is still writing never takes
        it for damage."""
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        ok_name = f"{group}/ok"
        if not group or name == ok_name:
            return
        cf = int(arr.chunks[0])
        if present is None:
            absent = [i for i in range(start // cf, -(-stop // cf))
                      if not chunk_file(self.path, name, arr, i).exists()]
        else:
            have = set(present)
            absent = [i for i in range(start // cf, -(-stop // cf)) if i not in have]
        if not absent or not self.has(ok_name):
            return
        ok_arr = self.array(ok_name)
        lo, hi = absent[0] * cf, min((absent[-1] + 1) * cf, stop, ok_arr.shape[0])
        ok = np.asarray(self.read(ok_name, lo, hi), bool)
        gone = set(absent)
        missing = [i for i in missing_chunks(self.path, name, arr, ok, lo) if i in gone]
        if missing:
            raise damaged(self.path, name, arr, missing[0],
                          f"is missing though '{ok_name}' flags its frames as written"
                          + (f" ({len(missing)} chunks missing in frames {start}-{stop})" if len(missing) > 1 else ""))

    def _check_writable(self) -> None:
        if self.mode == "r":
            raise StoreError(f"store {self.path} is open read-only")
