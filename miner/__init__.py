"""The miner layer: collect issue threads (GitHub, Denchmark, exports) into one SQLite store.

Commands live in :mod:`miner.cli`; the store's tables are the contract with the taxonomy and
analysis layers (``docs/schemas.md``); ``docs/miner.md`` describes the crawl.
"""
