"""The test suite (a package, so `tests.` names this folder, not a `tests` package some dependency installs)."""
