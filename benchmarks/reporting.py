"""Output shared by the benchmark scripts: result tables written as CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence


def write_csv(rows: Sequence[dict], columns: Sequence[str], path: Path) -> None:
    """Writes `rows` (missing keys left empty) to `path`, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, list(columns))
        writer.writeheader()
        writer.writerows(rows)
