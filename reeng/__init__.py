"""reeng: shared plumbing of the toolkit (CLI wiring, settings, errors, outputs, the study job).

The research layers are the top-level packages ``miner``, ``taxonomy`` and ``analysis``.
"""

__version__ = "0.1.0"

# The notebook API (reeng/api.py), loaded on first use so `import reeng` stays light.
# ReengError: bad input or environment (the CLI's one ``error:`` line); ReengWarning: work went on with less.
__all__ = ["Corpus", "ReengError", "ReengWarning", "analyse", "compare", "study_defects", "validate_release"]


def __getattr__(name: str):
    if name in ("ReengError", "ReengWarning"):
        from reeng import errors

        return getattr(errors, name)
    if name in __all__:
        from reeng import api

        return getattr(api, name)
    raise AttributeError(f"module 'reeng' has no attribute {name!r}")
