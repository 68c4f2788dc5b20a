"""Helpers for tests that score variants of the same leads with one scorer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lead_ml.scorer import Scored, Scorer


def feature_columns(scorer: Scorer, kind: str | None = None) -> list[str]:
    """The source columns features read (of one kind), in model order; the date
    parts of the created date read no column of their own and are left out."""
    return [
        s.column
        for s in scorer.registry.specs
        if s.kind != "activity" and s.column and (kind is None or s.kind == kind)
    ]


def feature_of(scorer: Scorer, column: str) -> str:
    """The model feature that reads a source column."""
    return next(s.name for s in scorer.registry.specs if s.column == column)


def unknown_spellings(scorer: Scorer) -> list[object]:
    """Every way an export says "not known": null, blank, and its placeholders in
    any case and with spaces around them."""
    spellings: list[object] = [None, np.nan, "", "   "]
    for placeholder in scorer.contract.missing_values:
        spellings += [placeholder, f"  {placeholder} ", placeholder.upper()]
    return spellings


def score_variants(
    scorer: Scorer,
    sample: pd.DataFrame,
    log: pd.DataFrame | None,
    variants: Sequence[Mapping[str, object]],
    explain_reasons: bool = True,
) -> list[Scored]:
    """Score the sample once per variant (columns set to values; a list gives one
    value per lead), all in one frame: each copy's ids get a suffix, and so do
    their activities."""
    id_column = scorer.id_column
    copies, logs = [], []
    ids = sample[id_column].astype(str)
    for k, values in enumerate(variants):
        copy = sample.astype(dict.fromkeys(values, object)).assign(
            **{id_column: ids + f"~{k}"}
        )
        for column, value in values.items():
            cells = value if isinstance(value, list) else [value] * len(copy)
            copy[column] = pd.Series(cells, index=copy.index, dtype=object)
        copies.append(copy)
        if log is not None:
            mine = log[log["deal_id"].isin(ids.tolist())]
            logs.append(mine.assign(deal_id=mine["deal_id"] + f"~{k}"))
    frame = pd.concat(copies, ignore_index=True)
    scored = scorer.score_chunk(
        frame, pd.concat(logs) if logs else None, explain_reasons
    )
    assert scored.rejects.empty, scored.rejects
    n = len(sample)
    return [
        Scored(
            scored.output.iloc[k * n : (k + 1) * n].reset_index(drop=True),
            scored.rejects,
            {},
            scored.features.iloc[k * n : (k + 1) * n].reset_index(drop=True),
            scored.rows[k * n : (k + 1) * n],
        )
        for k in range(len(variants))
    ]


def same_scores(one: Scored, other: Scored, columns: list[str] | None = None) -> None:
    """Equal outputs but for the ids' suffixes."""
    left, right = one.output.iloc[:, 1:], other.output.iloc[:, 1:]
    if columns is not None:
        left, right = left[columns], right[columns]
    pd.testing.assert_frame_equal(left, right)
