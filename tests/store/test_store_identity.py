"""Issue 13 item 2 (store side): every store has an id from its creation and a fingerprint of what it holds."""
import json
import shutil

import numpy as np
import pytest

from facesynth.errors import StoreError
from facesynth.store.frame_store import FrameStore
from facesynth.store.identity import identity_mismatch, store_identity


def _make(path, d0=612.5, ok=(1, 1, 0, 1, 1, 1, 0, 1), split=(0, 0, 0, 1, 0, 0, 0, 1)):
    st = FrameStore.create(path, chunk_frames=4, attrs={
        "capture": {"source": "synthetic", "seed": 7, "fps": 30.0}, "normalisation": {"d0_mm": d0}})
    st.ensure_array("raw/ok", 8, (), bool, fill_value=False)
    st.ensure_array("raw/split", 8, (), np.uint8)
    st.write("raw/ok", 0, np.array(ok, bool))
    st.write("raw/split", 0, np.array(split, np.uint8))
    return st


def test_identity_reports_id_source_counts_and_d0(tmp_path):
    path = tmp_path / "s.zarr"
    _make(path)
    ident = store_identity(path)
    marker = json.loads((path / "facesynth_store.json").read_text())
    assert ident["store_id"] == marker["store_id"] and len(ident["store_id"]) >= 16
    # counted by hand from the ok/split tuples above: ok frames 0,1,3,4,5,7; eval among them: 3, 7
    assert ident["frames"]["ok"] == {"raw": 6}
    assert (ident["frames"]["train"], ident["frames"]["eval"]) == (4, 2)
    assert ident["d0_mm"] == 612.5
    assert ident["source"] == {"source": "synthetic", "seed": 7}
    json.dumps(ident)  # saved as is in checkpoints and export metadata
    assert identity_mismatch(ident, store_identity(path)) is None


def test_recreated_store_has_a_new_id_and_the_mismatch_names_both(tmp_path):
    path = tmp_path / "s.zarr"
    _make(path)
    old = store_identity(path)
    shutil.rmtree(path)
    _make(path)  # same path, same content: still another store
    new = store_identity(path)
    assert new["store_id"] != old["store_id"]
    assert new["fingerprint"] == old["fingerprint"]
    msg = identity_mismatch(old, new)
    assert msg and old["store_id"][:12] in msg and new["store_id"][:12] in msg


def test_other_d0_or_frames_change_the_fingerprint(tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    _make(a, d0=612.5)
    base = store_identity(a)
    FrameStore.open(a).update_attrs(normalisation={"d0_mm": 540.0})
    other_d0 = store_identity(a)
    assert other_d0["fingerprint"] != base["fingerprint"]
    msg = identity_mismatch(base, other_d0)
    assert msg and "612.5" in msg and "540.0" in msg
    _make(b, ok=(1,) * 8)
    assert store_identity(b)["frames"]["ok"] == {"raw": 8}
    assert store_identity(b)["fingerprint"] != base["fingerprint"]


def test_a_directory_without_marker_has_no_identity(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="no store marker"):
        store_identity(tmp_path / "plain")
    assert identity_mismatch({}, {"store_id": "x", "path": "p"})  # an old checkpoint without identity
