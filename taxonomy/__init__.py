"""taxonomy."""


def __getattr__(name: str) -> object:
    """``taxonomy.machine_defects``: the public entry to a store's machine labels (imported lazily)."""
    if name == "machine_defects":
        from taxonomy.predictions import machine_defects

        return machine_defects
    raise AttributeError(f"module 'taxonomy' has no attribute {name!r}")
