"""Publication figures for the count tables: stacked bars, heatmaps and the marginals.

A category keeps one colour and one hatch in every figure: both come from its position in the
taxonomy's dimension, not from which categories a table happens to contain. Nominal categories
get a categorical palette (Paul Tol's "muted" scheme, safe for the common colour-vision
deficiencies), never a sequential map that would suggest an order. The palette is arranged so
that neighbours alternate light and dark in greyscale, and every category also gets a hatch,
so a black-and-white print keeps 13 or 14 categories apart. The rare-category bucket is always
light grey without hatch. Counts in heatmaps are a quantity and keep a grey sequential scale.

Figures fit an EMSE/IEEE page: at most the double-column width (IEEE 7.16 in, EMSE 174 mm =
6.85 in); those drawn narrower fit a single column (IEEE 3.5 in, EMSE 84 mm). Text is measured
after drawing and the canvas grows to hold every label and title (nothing is clipped), with
titles wrapped to the width. PDFs embed TrueType (Type 42) fonts, as IEEE PDF eXpress requires.
"""

from __future__ import annotations

import multiprocessing
import os
import textwrap
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: figures are files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.tables import CrossTable, Marginal  # noqa: E402
from taxonomy.model import Dimension, Taxonomy, load_taxonomy  # noqa: E402

# Paul Tol's muted palette, ordered so that neighbours alternate light and dark in greyscale.
PALETTE = ("#DDCC77", "#332288", "#88CCEE", "#882255", "#44AA99", "#117733", "#999933", "#AA4499", "#CC6677")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--", "**", "||")
BUCKET_COLOUR = "#d9d9d9"
FORMATS = ("png",)  # the report embeds PNG; PDF (print) and SVG on request
DOUBLE_COLUMN_IN = 7.16  # IEEE double-column width; EMSE's is 6.85 in
STYLE = {
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False,
    "savefig.dpi": 150, "pdf.fonttype": 42, "ps.fonttype": 42,
    # FreeType's auto-hinter nearly doubled the time of every text measurement and drawing; at
    # 150 dpi unhinted text is as legible, and PDFs never use hinting.
    "text.hinting": "no_hinting",
}


def category_style(dim: Dimension, cat_id: str) -> tuple[str, str]:
    """(colour, hatch) of a category: fixed by its place in the taxonomy, not by the table.

    Colours cycle through 9, hatches through 10, so up to 90 categories get distinct pairs.
    """
    labels = [c.id for c in dim.categories if c.origin != "bucket"]
    if cat_id not in labels:
        return BUCKET_COLOUR, ""
    i = labels.index(cat_id)
    return PALETTE[i % len(PALETTE)], HATCHES[i % len(HATCHES)]


def fit_canvas(fig: plt.Figure, pad: float = 0.08) -> None:
    """Grow the canvas so that every drawn text lies inside it, keeping each axes' size in inches.

    Measured at the resolution the figure is saved at (text extents change slightly with it).
    Only what can reach outside an axes is measured: its title, tick and axis labels (always
    included) and the texts and legends given here; bars and images stay inside their axes.
    """
    dpi = plt.rcParams["savefig.dpi"]
    fig.set_dpi(fig.dpi if dpi == "figure" else dpi)
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    texts = [*fig.texts, *(t for ax in fig.axes for t in ax.texts), *(ax.legend_ for ax in fig.axes if ax.legend_)]
    box = fig.get_tightbbox(renderer, bbox_extra_artists=texts)  # inches
    left, bottom = max(0.0, pad - box.x0), max(0.0, pad - box.y0)
    right, top = max(0.0, box.x1 + pad - width), max(0.0, box.y1 + pad - height)
    if not any((left, bottom, right, top)):
        return
    new_w, new_h = width + left + right, height + bottom + top
    for ax in fig.axes:
        x0, y0, w, h = ax.get_position().bounds
        ax.set_position(((x0 * width + left) / new_w, (y0 * height + bottom) / new_h, w * width / new_w, h * height / new_h))
    for text in fig.texts:
        x, y = text.get_position()
        text.set_position(((x * width + left) / new_w, (y * height + bottom) / new_h))
    fig.set_size_inches(new_w, new_h)


def _title(ax: plt.Axes, text: str, width_in: float) -> None:
    """A title wrapped to ``width_in`` inches (9-pt characters are about 0.075 in wide)."""
    ax.set_title("\n".join(textwrap.wrap(text, max(20, int(width_in / 0.075)))), y=1.0)


def _label(dim: Dimension, cat_id: str) -> str:
    return dim.category(cat_id).name


def _lower(name: str) -> str:
    """Lower-case a dimension name for use mid-sentence, keeping acronyms ("DL root cause")."""
    return name if name[:2].isupper() else name[:1].lower() + name[1:]


# PDFs without a creation date (reproducible bytes); PNGs at zlib level 3, smaller and faster than
# the default 6 on these flat-colour, hatched images
SAVE_OPTIONS = {"pdf": {"metadata": {"CreationDate": None}}, "png": {"pil_kwargs": {"compress_level": 3}}}
CHAR_IN = 0.052  # average width of one 7-pt DejaVu Sans character in inches, for margins sized to the labels


def _figure(axes_w: float, axes_h: float, left: float, bottom: float, right: float = 0.2, top: float = 0.35) -> tuple[plt.Figure, plt.Axes]:
    """A figure with one axes placed in inches.

    Sizing margins from the label lengths instead of a layout engine: the engines measure every
    text several times, which made figure writing the slowest part of a report.
    """
    width, height = left + axes_w + right, bottom + axes_h + top
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, axes_w / width, axes_h / height))
    return fig, ax


def _save(fig: plt.Figure, out_dir: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    fit_canvas(fig)
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, **SAVE_OPTIONS.get(fmt, {}))
        paths.append(path)
    plt.close(fig)
    return paths


def stacked_bars(table: CrossTable, tax: Taxonomy, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Each row as a 100% bar split by the column categories, with its defect count."""
    counts = table.counts
    assert counts is not None
    shares = table.row_shares() * 100
    row_dim, col_dim = tax.dimension(table.rows), tax.dimension(table.columns)
    ylabels = [f"{_label(row_dim, r)} (n={int(counts.loc[r].sum())})" for r in counts.index]
    left_margin = CHAR_IN * max(map(len, ylabels)) + 0.15
    longest = max(len(_label(col_dim, c)) for c in counts.columns)
    legend_cols = max(1, min(4, len(counts.columns), int((left_margin + 4.6) // (CHAR_IN * longest + 0.5))))
    legend_rows = -(-len(counts.columns) // legend_cols)
    with plt.rc_context(STYLE):
        fig, ax = _figure(4.6, 0.32 * len(counts) + 0.2, left_margin, 0.55 + 0.2 * legend_rows)
        y = np.arange(len(counts))[::-1]
        left = np.zeros(len(counts))
        for col in counts.columns:
            colour, hatch = category_style(col_dim, col)
            ax.barh(y, shares[col].to_numpy(), left=left, color=colour, hatch=hatch, edgecolor="black",
                    linewidth=0.4, label=_label(col_dim, col))
            left += shares[col].to_numpy()
        ax.set_yticks(y, ylabels)
        ax.set_xlim(0, 100)
        ax.set_xlabel(f"share of defects by {_lower(col_dim.name)} (%)")
        _title(ax, f"{row_dim.name} by {_lower(col_dim.name)}", left_margin + 4.6)
        ax.legend(ncol=legend_cols, loc="upper center", bbox_to_anchor=(0.5, -0.5 / (0.32 * len(counts) + 0.2)),
                  frameon=False, handlelength=1.6)
        return _save(fig, out_dir, f"{table.name}_bars", formats)


def heatmap(table: CrossTable, tax: Taxonomy, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Counts as a grey-scale grid with every count printed in its cell."""
    counts = table.counts
    assert counts is not None
    row_dim, col_dim = tax.dimension(table.rows), tax.dimension(table.columns)
    values = counts.to_numpy()
    xlabels = [_label(col_dim, c) for c in counts.columns]
    ylabels = [_label(row_dim, r) for r in counts.index]
    # The first x label, rotated 40 degrees, reaches left of the grid: the margin holds it too.
    left = max(CHAR_IN * max(map(len, ylabels)), 0.77 * CHAR_IN * len(xlabels[0]) - 0.15) + 0.15
    # Cells shrink (to 0.24 in) so that 14 columns, or all 20 root causes, still fit the double-column width.
    cell = max(0.24, min(0.5, (DOUBLE_COLUMN_IN - 0.3 - left - 0.3) / len(xlabels)))
    with plt.rc_context(STYLE):
        fig, ax = _figure(cell * len(xlabels) + 0.3, 0.3 * len(ylabels) + 0.1, left,
                          CHAR_IN * 0.66 * max(map(len, xlabels)) + 0.2, right=0.3)
        # Every count is printed in its cell, so a colour bar would repeat them.
        ax.imshow(values, cmap="Greys", aspect="auto", vmin=0, vmax=max(int(values.max()), 1))
        ax.set_xticks(range(len(xlabels)), xlabels, rotation=40, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(ylabels)), ylabels)
        threshold = values.max() / 2
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7 if cell >= 0.4 else 6 if cell >= 0.3 else 5.5,
                    color="white" if v > threshold else "black")
        _title(ax, f"{row_dim.name} x {_lower(col_dim.name)} (defect counts)", left + cell * len(xlabels) + 0.3)
        ax.spines[:].set_visible(False)
        return _save(fig, out_dir, f"{table.name}_heatmap", formats)


def marginals_figure(marginals: dict[str, Marginal], tax: Taxonomy, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """One small bar chart per dimension: shares with Wilson 95% intervals."""
    dims = [m for m in marginals.values() if len(m.counts)]
    if not dims:
        return []
    label_w = CHAR_IN * max(len(f"{_label(tax.dimension(m.dimension), c)} (000)") for m in dims for c in m.counts.index)
    # Two panels per row at double-column width when the labels leave a 0.9-in plot, else one.
    cols = 2 if label_w + 1.15 <= DOUBLE_COLUMN_IN / 2 else 1
    cell_w = DOUBLE_COLUMN_IN / cols
    per_cat, chrome = 0.17, 0.75  # inches per category; title and axis per panel
    rows = [dims[i:i + cols] for i in range(0, len(dims), cols)]
    heights = [per_cat * max(len(m.counts) for m in row) + chrome for row in rows]
    total_h = sum(heights) + 0.3
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(DOUBLE_COLUMN_IN, total_h))
        top = total_h
        for row, row_h in zip(rows, heights):
            top -= row_h
            for c, m in enumerate(row):
                n_cats = len(m.counts)
                axes_h = per_cat * n_cats
                ax = fig.add_axes(((c * cell_w + label_w + 0.1) / DOUBLE_COLUMN_IN, (top + row_h - 0.35 - axes_h) / total_h,
                                   (cell_w - label_w - 0.25) / DOUBLE_COLUMN_IN, axes_h / total_h))
                dim = tax.dimension(m.dimension)
                shares = m.shares()
                y = np.arange(len(shares))[::-1]
                # Categories are named on the axis here, so colour is a courtesy and hatches would
                # only cost drawing time.
                ax.barh(y, shares["share"] * 100, color=[category_style(dim, cat)[0] for cat in shares.index],
                        edgecolor="black", linewidth=0.4)
                # the interval as it is: a cluster-bootstrap interval need not contain the point estimate
                ax.hlines(y, shares["ci_low"] * 100, shares["ci_high"] * 100, color="black", linewidth=0.6)
                ax.set_yticks(y, [f"{_label(dim, cat)} ({n})" for cat, n in shares["count"].items()])
                _title(ax, f"{dim.name} (n={int(shares['count'].sum())})", cell_w - label_w - 0.25)
                ax.set_xlim(0, 100)
                ax.set_ylim(-0.6, len(shares) - 0.4)
                ax.set_xticks([0, 25, 50, 75, 100])
        fig.text(0.5, 0.01, "share of defects (%), Wilson 95% interval", ha="center", va="bottom")
        return _save(fig, out_dir, "marginals", formats)


def _draw(job: tuple[str, object, str, Path, tuple[str, ...]]) -> tuple[str, list[Path]]:
    """One figure (in a worker process): job = (kind, data, taxonomy id, folder, formats)."""
    kind, data, tax_id, out_dir, formats = job
    tax = load_taxonomy(tax_id)
    if kind == "marginals":
        return "marginals", marginals_figure(data, tax, out_dir, formats)  # type: ignore[arg-type]
    draw = stacked_bars if kind == "bars" else heatmap
    return f"{data.name}_{kind}", draw(data, tax, out_dir, formats)  # type: ignore[union-attr]


class FigureJobs:
    """Every figure of a report, drawn in worker processes while the caller goes on; :meth:`result` waits.

    Matplotlib draws on one core; a report's 15 figures are independent, so they are spread over
    the machine's cores, the costliest first, and the caller's own work (statistics, tables)
    runs meanwhile. ``workers=1`` draws in this process, when :meth:`result` is called. Leaving
    the ``with`` block early (an error) cancels the figures not yet started.
    """

    def __init__(self, tables: dict[str, CrossTable], marginals: dict[str, Marginal], tax: Taxonomy, out_dir: Path,
                 formats: tuple[str, ...] = FORMATS, workers: int | None = None) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._jobs: list[tuple[str, object, str, Path, tuple[str, ...]]] = [("marginals", marginals, tax.id, out_dir, formats)]
        for table in tables.values():
            if table.counts is not None:
                self._jobs += [("bars", table, tax.id, out_dir, formats), ("heatmap", table, tax.id, out_dir, formats)]
        workers = workers or min(len(self._jobs), os.cpu_count() or 1)
        self._pool = None
        self._futures: dict[int, Future] = {}
        if workers > 1:
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            # longest first, so that no worker is left with a big figure at the end
            for i in sorted(range(len(self._jobs)), key=lambda i: -_cost(self._jobs[i])):
                self._futures[i] = self._pool.submit(_draw, self._jobs[i])

    def result(self) -> dict[str, list[Path]]:
        """Figure name -> files in ``formats`` order (figures without data are left out)."""
        results = [self._futures[i].result() if self._pool else _draw(job) for i, job in enumerate(self._jobs)]
        return {name: paths for name, paths in results if paths}

    def __enter__(self) -> FigureJobs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def _cost(job: tuple[str, object, str, Path, tuple[str, ...]]) -> int:
    """Relative drawing time of a job: the marginals panel is the largest, then tables by their cells."""
    kind, data = job[:2]
    if kind == "marginals":
        return 10**6
    counts = data.counts  # type: ignore[attr-defined]
    return counts.shape[0] * counts.shape[1]


def draw_all(tables: dict[str, CrossTable], marginals: dict[str, Marginal], tax: Taxonomy, out_dir: Path,
             formats: tuple[str, ...] = FORMATS, workers: int | None = None) -> dict[str, list[Path]]:
    """Every figure of a report, drawn in parallel processes (:class:`FigureJobs`); figure name -> files."""
    with FigureJobs(tables, marginals, tax, out_dir, formats, workers) as jobs:
        return jobs.result()
