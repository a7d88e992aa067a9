"""Where a worker keeps its tables: RocksDB files under the state dir, with bounded memory.

In memory (`memory://`), every account costs the worker its stored bytes in RAM, and a worker
that starts rebuilds every table by reading its whole changelog. On disk, memory stays bounded
whatever the number of accounts, and a restarted worker reads only the changelog written since
its files were last updated.

Faust's RocksDB defaults are sized for a dedicated server: per partition database, 64 MiB
write buffers (up to 3) and a 2 GiB block cache, times every partition of every table. Here
each database gets small write buffers and a small cache, so a worker's RSS stays within a
few hundred MiB however many accounts it holds (`usage-detector bench` measures it).
"""

from __future__ import annotations

from typing import Any

MiB = 1024 * 1024

BOUNDS: dict[str, Any] = {
    "write_buffer_size": 4 * MiB,  # memtable per partition database, flushed to disk when full
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * MiB,
    "block_cache_size": 8 * MiB,  # recently read blocks per partition database
}


def store_url(kind: str) -> str:
    """The Faust store URL for the `store` setting: `rocksdb` or `memory`."""
    return "rocksdb://" if kind == "rocksdb" else "memory://"


def table_options(kind: str) -> dict[str, Any]:
    """`options` of `app.Table(...)`: the bounds above for RocksDB. A new dict for every table:
    Faust's RocksDB store pops keys from the dict it is given."""
    return dict(BOUNDS) if kind == "rocksdb" else {}
