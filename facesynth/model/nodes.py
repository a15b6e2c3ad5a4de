"""`model.pix2pix`: train the drawing -> RGBD generator from the pairs in the store.

A thin adapter over model/train_job.py. The ChunkRefs that arrive only say "the pairs are being written"; on finish()
it reads every finished pair of the store (train and eval split, whatever arrived in this run:
a resumed run skips chunks recorded as done, and training must still see all of them), trains
with facesynth.model.train (resuming from the newest intact checkpoint in the model directory
`<store>.model/`, if it was trained on this store; with more than one thread in a child process,
model/train_process.py), exports weights + ONNX + TorchScript +
metadata and emits {"path": <exported generator.pt>, "dir": <export dir>} on `model`.
"""
from __future__ import annotations

import threading

from facesynth.model.train_job import Pix2PixParams, model_dir, train_from_store, training_threads
from facesynth.nodes.base import Node, Output
from facesynth.nodes.registry import register


@register
class Pix2PixNode(Node):
    kind = "model.pix2pix"
    summary = "Train the pix2pix(HD) drawing -> RGBD generator from the store, resumable; export it"
    Params = Pix2PixParams
    inputs = {"pairs": "ChunkRefs of the training pairs (fill or crop group)"}
    outputs = {"model": '{"path": exported generator.pt (weights), "dir": export directory}'}
    max_replicas = 1

    async def setup(self) -> None:
        self._stop = threading.Event()
        store_path = self.ctx.store_path
        self._out = model_dir(store_path or "data_store/model", self.params.out_dir)
        if store_path:  # refuse another store's model before any training; --restart starts it over
            from facesynth.errors import StoreError
            from facesynth.model.model_dir import prepare_model_dir
            from facesynth.store.marker import read_marker

            marker = read_marker(store_path)  # only the id: other nodes may be writing the arrays now
            if marker is None:
                raise StoreError(f"{store_path} has no store marker; model.pix2pix trains from a facesynth store")
            state = prepare_model_dir(self._out, {"store_id": marker["store_id"], "path": str(store_path)},
                                      self.ctx.restart)
            if state == "restarted":
                self.ctx.report("train.model_restarted", model_dir=str(self._out))

    async def process(self, port: str, item) -> list[Output]:
        return []  # a chunk of pairs is finished; finish() reads them all from the store

    async def finish(self) -> list[Output]:
        frames = None  # every finished pair of the store, not only the chunks that came this run
        if self.ctx.store_path is None:
            from facesynth.errors import StoreError
            raise StoreError("model.pix2pix trains from the frame store, but the graph declares none")
        threads = training_threads(self.params.threads)
        if threads > 1:
            from facesynth.model.train_process import train_in_process
            result = await self.run_blocking(train_in_process, self.ctx.store_path, self.params, frames,
                                             self._out, self.ctx.report, self._stop, threads)
        else:
            result = await self.run_blocking(train_from_store, self.ctx.store_path, self.params, frames,
                                             self._out, self.ctx.report, self._stop)
        if result["status"] != "done":
            self.ctx.report("train.stopped", epoch=result["epoch"], step=result["step"])
            return []
        return [Output("model", {"path": result["path"], "dir": result["dir"]}, key="model")]

    async def close(self) -> None:
        self._stop.set()
