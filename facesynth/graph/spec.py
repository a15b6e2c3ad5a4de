"""The graph file's schema as strict pydantic models (unknown keys are errors).

Structure only: whether kinds, ports and params make sense is checked in checks.py,
which needs the node registry.
"""
from __future__ import annotations

import re
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from facesynth.store.zarr_limits import MAX_CHUNK_FRAMES

Policy = Literal["block", "drop_oldest", "latest"]
ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# a graph name becomes part of file names ({name} in store.path): a plain name, never a path
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSpec(Strict):
    path: str = "data_store/{name}.zarr"
    chunk_frames: int = Field(8, ge=1, le=MAX_CHUNK_FRAMES)


class Defaults(Strict):
    queue: int = Field(4, ge=1, le=100_000)
    policy: Policy = "block"
    max_restarts: int = Field(3, ge=0, le=100)


class EdgeSpec(Strict):
    """One input of a node: where it comes from, and how its queue behaves."""

    from_: str = Field(alias="from")
    queue: int | None = Field(None, ge=1, le=100_000)
    policy: Policy | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Resources(Strict):
    cpus: float = Field(1.0, ge=0, le=1024)
    gpus: float = Field(0.0, ge=0, le=64)


class NodeSpec(Strict):
    id: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Union[str, EdgeSpec, list[Union[str, EdgeSpec]]]] = Field(default_factory=dict)
    replicas: Union[int, Literal["auto"]] = 1
    resources: Resources = Field(default_factory=Resources)
    max_restarts: int | None = Field(None, ge=0, le=100)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError("node ids are letters, digits, '_' or '-', starting with a letter or '_'")
        return v

    @field_validator("replicas")
    @classmethod
    def _replicas_positive(cls, v: Any) -> Any:
        if isinstance(v, int) and not 1 <= v <= 1024:
            raise ValueError("replicas must be between 1 and 1024, or 'auto'")
        return v

    def edges(self, port: str) -> list[EdgeSpec]:
        """Every edge into input `port` (one port may read from several producers)."""
        raw = self.inputs[port]
        items = raw if isinstance(raw, list) else [raw]
        return [EdgeSpec(**{"from": r}) if isinstance(r, str) else r for r in items]


class GraphSpec(Strict):
    version: Literal[1] = 1
    name: str
    description: str = ""
    store: StoreSpec | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    nodes: list[NodeSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not NAME_RE.match(v) or ".." in v:
            raise ValueError("a graph name is a plain name: letters, digits, '_', '-' or '.' (not '..', "
                             "no '/'), at most 100 characters, e.g. capture_to_model")
        return v

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def store_path(self) -> str | None:
        if not self.store:
            return None
        path = self.store.path.replace("{name}", self.name)
        return path.rstrip("/") or path  # "x.zarr/" is x.zarr: its logs go beside it, not inside


def split_ref(ref: str) -> tuple[str, str] | None:
    """'node/port' -> ('node', 'port'); None if the text is not of that shape."""
    parts = ref.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]
