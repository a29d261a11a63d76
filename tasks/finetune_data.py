"""Where fine-tuning targets live in a preprocessed DATA folder (the MuAViC layout of
:mod:`avsr.data.targets`), and the evenly spaced subsets used for cheaper validation."""

from __future__ import annotations

from pathlib import Path

from avsr.data.targets import SplitFiles, read_split, target_files, write_rows

__all__ = ["SplitFiles", "subset_rows", "target_files"]


def subset_rows(files: SplitFiles, n: int, out: Path, split: str) -> SplitFiles:
    """Evenly spaced ``n`` rows of a split (for cheaper validation), written under ``out/data``."""
    m, labels, langs = read_split(files)
    if n >= len(m.rows):
        return files
    idx = sorted({int(i * len(m.rows) / n) for i in range(n)})
    d = out / "data"
    dest = SplitFiles(d / f"{split}.sub.tsv", d / f"{split}.sub.txt", d / f"{split}.sub.lang")
    return write_rows(dest, m, labels, langs, idx)
