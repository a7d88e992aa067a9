"""The tables' store: RocksDB with the memory bounds of streams/store.py, or memory."""

from pathlib import Path

import pytest

from streams.app import create_app
from streams.settings import Settings
from streams.store import BOUNDS


@pytest.mark.parametrize("table", ["accounts", "signals"])
def test_rocksdb_tables_open_with_the_memory_bounds(tmp_path: Path, table: str) -> None:
    detector = create_app(Settings(state_dir=tmp_path, store="rocksdb"), "127.0.0.1:9")
    store = getattr(detector.topology, table).data  # the store Faust builds for the table
    options = vars(store.rocksdb_options)
    assert {name: options[name] for name in BOUNDS} == BOUNDS


def test_memory_store_keeps_tables_in_memory(tmp_path: Path) -> None:
    detector = create_app(Settings(state_dir=tmp_path, store="memory"), "127.0.0.1:9")
    assert type(detector.topology.accounts.data).__module__ == "faust.stores.memory"
