"""Reading user-supplied tables (CSV, Parquet or XLSX) with one clear error per problem."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from reeng.errors import ReengError
from reeng.outputs import from_spreadsheet


def read_table(path: Path | str, required: Iterable[str] = (), *, dtype_str: bool = True) -> pd.DataFrame:
    """Read a CSV, Parquet or XLSX (first sheet) file; fail with a message naming the file and what is wrong with it.

    CSV cells are read as strings with empty cells as missing, so labels like ``no `` keep
    their spelling for normalization and nothing is guessed into floats; a cell reeng escaped
    against spreadsheet formulas (:func:`reeng.outputs.spreadsheet_safe`) reads as it was.
    """
    path = Path(path)
    if not path.exists():
        raise ReengError(f"{path}: no such file")
    if path.is_dir():
        raise ReengError(f"{path}: is a folder, expected a CSV or Parquet file")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix.lower() == ".xlsx":  # the first sheet, as text (a labeling sheet from annotate export)
            frame = from_spreadsheet(pd.read_excel(path, sheet_name=0, dtype=str, keep_default_na=False, na_values=[""]))
        else:
            frame = from_spreadsheet(pd.read_csv(path, dtype=str if dtype_str else None, keep_default_na=False, na_values=[""]))
    except UnicodeDecodeError:
        raise ReengError(f"{path}: not a CSV file (it is not UTF-8 text)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError, zipfile.BadZipFile) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReengError(f"{path}: not a readable table ({first})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ReengError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}")
    return frame
