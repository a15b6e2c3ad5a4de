"""Zarr on a store from elsewhere: every file Zarr reads is checked before it is read.

`CheckedLocalStore` is Zarr's LocalStore with one rule on `get`: the file must be a regular file
(no FIFO, device or link to /dev/zero) within a size limit (input_files.py); a `zarr.json` is
read here, parsed with a nesting limit and checked against what facesynth writes (zarr_limits.py)
before Zarr sees it; a chunk file may be at most its array's chunk, compressed at worst. Its
decompressed size is then checked by the zstd codec against the chunk's header (zstd_frames.py).
Every part of facesynth that opens a store's Zarr nodes does it through `open_root`/`open_array`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zarr
from zarr.storage import LocalStore

from facesynth.errors import StoreDamaged
from facesynth.input_files import InputFileError, check_regular
from facesynth.store import zstd_frames  # noqa: F401 - installs the bounded zstd codec
from facesynth.store.zarr_limits import (META, ArrayLayout, check_array_metadata, check_group_metadata,
                                         chunk_file_limit, read_node, read_node_metadata)


class CheckedLocalStore(LocalStore):
    """LocalStore whose reads are checked first (see the module docstring); writes are Zarr's own."""

    def __init__(self, root: Path | str, *, read_only: bool = False) -> None:
        super().__init__(root, read_only=read_only)
        self._layouts: dict[str, ArrayLayout] = {}  # array name -> its checked layout
        self._chunk_frames: int | None = None
        self._root_read = False

    def with_read_only(self, read_only: bool = False) -> "CheckedLocalStore":
        return type(self)(root=self.root, read_only=read_only)

    def _root_chunk_frames(self) -> int | None:
        if not self._root_read:
            try:
                self._check_root(read_node_metadata(self.root))
            except FileNotFoundError:
                return None
        return self._chunk_frames

    def _check_root(self, meta: dict) -> None:
        self._chunk_frames = check_group_metadata(meta, self.root / META)
        self._root_read = True

    def _metadata(self, name: str) -> bytes | None:
        """The bytes of node `name`'s zarr.json ('' for the root) after its checks; None if absent."""
        file = self.root / name / META if name else self.root / META
        try:
            data, meta = read_node(self.root, name)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not name:
            self._check_root(meta)
        elif meta.get("node_type") == "array":
            self._layouts[name] = check_array_metadata(meta, file, name, self._root_chunk_frames())
        else:
            check_group_metadata(meta, file, name)
        return data

    def _layout_of(self, key: str) -> ArrayLayout | None:
        """The checked layout of the array whose chunk `key` is (its metadata is read if need be)."""
        name = next((n for n in self._layouts if key.startswith(n + "/c/")), None)
        if name is None and "/c/" in key:
            name = key.rsplit("/c/", 1)[0]
            self._metadata(name)
        return self._layouts.get(name) if name else None

    def _check_file(self, key: str) -> bool:
        """Whether `key` is a file to read (False: absent); InputFileError when it may not be read."""
        path = self.root / key
        try:
            check_regular(path, chunk_file_limit(self._layout_of(key)), "chunk file")
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        if key == META or key.endswith("/" + META):
            data = self._metadata(key[:-len(META)].rstrip("/"))
            if data is None:
                return None
            if prototype is None:
                from zarr.core.buffer.core import default_buffer_prototype

                prototype = default_buffer_prototype()
            return prototype.buffer.from_bytes(data)
        if not self._check_file(key):
            return None
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]


def _as_store_damaged(store: Path, exc: InputFileError) -> StoreDamaged:
    name = str(Path(exc.path).parent.relative_to(store)) if Path(exc.path).is_relative_to(store) else ""
    return StoreDamaged(str(exc), array="" if name == "." else name)


def open_root(path: str | os.PathLike, mode: str) -> zarr.Group:
    """The store's root group through a CheckedLocalStore (InputFileError as StoreDamaged)."""
    p = Path(path)
    try:
        return zarr.open_group(store=CheckedLocalStore(p, read_only=mode == "r"), mode=mode, zarr_format=3,
                               use_consolidated=False)  # every array's own zarr.json is read, and checked
    except InputFileError as exc:
        raise _as_store_damaged(p, exc) from None


def open_array(path: str | os.PathLike, name: str) -> zarr.Array:
    """Array `name` of the store at `path`, read-only, its metadata checked first."""
    p = Path(path)
    try:
        return zarr.open_array(store=CheckedLocalStore(p, read_only=True), path=name, mode="r", zarr_format=3)
    except InputFileError as exc:
        raise _as_store_damaged(p, exc) from None
