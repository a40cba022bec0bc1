"""An oversized manifest.json, as whoever can write a repository could plant one to exhaust the memory of every
host that lists or restores it: each store must stop reading one byte past manifest.MAX_BYTES, and the catalog
must report the set as damaged (invalid), never crash or hold the whole object in memory."""

import tracemalloc

import pytest

from engine.core import manifest as manifest_mod
from engine.core.errors import IntegrityError
from engine.pipeline.catalog import INVALID, list_sets
from engine.pipeline.backup import run_backup

from .crafted_sets import BytesSource

JOB = "app"
OVERSIZED = b" " * (4 * manifest_mod.MAX_BYTES)  # 64 MiB of JSON whitespace: only a read of it all could parse it
# what was read (up to the bound) and one joined copy of it (paramiko, ftplib chunks), plus buffers: a constant,
# well below OVERSIZED, where a read of the whole object would hold all of it
MEMORY_BOUND = 2 * manifest_mod.MAX_BYTES + 8 * 1024 * 1024


def plant_set(repository):
    """A real set of JOB (stored through the engine); returns its id. The test then replaces its manifest."""
    return run_backup(BytesSource("directory", "tar", b"crafted"), repository, JOB, compression="none")["id"]


def assert_refused_within_bound(repository, set_id):
    """Reading the planted manifest fails as damage while Python's heap stays under MEMORY_BOUND, and the catalog
    lists the set as invalid with the reason."""
    store = repository.stores[0]
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match="more than %d bytes" % manifest_mod.MAX_BYTES):
            store.read_manifest(JOB, set_id)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, "reading the manifest held %d bytes" % peak
    listed = {s.set_id: s for s in list_sets(repository, JOB)}
    assert listed[set_id].status == INVALID
    assert "more than" in listed[set_id].error
