"""reeng: shared plumbing of the toolkit (CLI wiring, settings, errors, outputs, the study job).

The research layers are the top-level packages ``miner``, ``taxonomy`` and ``analysis``.
"""

__version__ = "0.1.0"
