"""Tables from records: pivots per the suite's ``tables:``, rendered, never re-measured.

A cell is a number in the metric's SI unit or, for a non-ok record, its
status (``failed``, ``skipped``, ``nonfinite``); a status never shows as a
number. Axes that vary within a table but are neither its rows nor its
columns are added to the rows, so no cell ever hides two measurements.
:mod:`~bench_cli.tables.build` makes the tables, :mod:`~bench_cli.tables.format` the
cells and :mod:`~bench_cli.tables.render` the text and files. No torch.
"""

from bench_cli.tables.build import (
    MAX_OPTION_PARTS,
    PairedComparison,
    Table,
    build,
    default_tables,
    options_caption,
    paired_claims,
    scaling_exponent,
    tables_for,
)
from bench_cli.tables.format import (
    NOISY_IQR,
    NOISY_MARK,
    cell_value,
    format_cell,
    format_number,
    format_with_spread,
    md_cell,
    noise_reasons,
    noise_summary,
    plain,
    spread_value,
    status_summary,
)
from bench_cli.tables.render import FORMATS, render, text_table, to_rich, write
