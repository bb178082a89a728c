"""What every data source shares to report bad rows: the `CleaningReport`, and
where a row came from (`row_location`).

Strict by default: a bad row raises a `ValueError` that names the file, the line,
the field and the received value. With `lenient=True` the row is dropped instead and
counted in the `CleaningReport`, so a run can say exactly what it threw away.

Sources may attach two helper columns to the interactions they hand over: `_line`
(1-based line number in the source file) and `_file` (the file path). Messages use
them to point at the offending line; the cleaned frame drops them.
"""

from __future__ import annotations

import dataclasses

import pandas as pd


@dataclasses.dataclass
class CleaningReport:
    """Counts of what cleaning dropped or repaired, printed and saved with a run."""

    rows_read: int = 0
    malformed_rows: int = 0
    duplicate_rows: int = 0
    nan_labels: int = 0
    out_of_range_labels: int = 0
    unknown_item_rows: int = 0
    unknown_user_rows: int = 0
    rows_kept: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        dropped = {k: v for k, v in self.as_dict().items()
                   if k not in ("rows_read", "rows_kept") and v}
        detail = ", ".join(f"{k}={v}" for k, v in dropped.items()) or "nothing dropped"
        return f"read {self.rows_read} rows, kept {self.rows_kept} ({detail})"


LINE_COLUMN = "_line"
FILE_COLUMN = "_file"
HELPER_COLUMNS = (LINE_COLUMN, FILE_COLUMN)

LENIENT_HINT = "pass lenient=True / --set data.lenient=true to skip and count such rows"


def row_location(df: pd.DataFrame, position: int, source: str) -> str:
    """Describes where row `position` of `df` came from, e.g. "u.data, line 12".

    Args:
        df: a frame that may carry the `_line` / `_file` helper columns.
        position: 0-based integer position of the row in `df`.
        source: the file or dataset name to use when `df` has no `_file` column.

    Returns:
        "<file>, line <n>" when line numbers are known, else "<source>, row <n>"
        with `n` the 1-based position in `df`.
    """
    file = df[FILE_COLUMN].iloc[position] if FILE_COLUMN in df.columns else source
    if LINE_COLUMN in df.columns:
        unit = "row" if str(file).endswith((".parquet", ".pq")) else "line"
        return f"{file}, {unit} {int(df[LINE_COLUMN].iloc[position])}"
    return f"{file}, row {position + 1}"
