"""The MLflow pyfunc definition of the lead-ml scorer (MLflow "models from code").

MLflow copies this file into the scorer folder and executes it whenever it loads the
folder, before any check of lead-ml can run: it only imports the installed lead-ml
(the folder ships no lead_ml code) and defines the model. Its load_context checks
every file of the folder against the manifest before the bundle is read
(lead_ml.scorer.open_pyfunc; lead_ml.scorer.verify_folder says what that does and
does not protect). Settings, from the environment where it is loaded (or from
lead_ml.scorer.load_pyfunc's arguments):

- ``LEAD_ML_EXPECT_VERSION``: refuse any other model version.
- ``LEAD_ML_ALLOW_ACTIVITIES_PATH=1``: let a request's ``activities_path`` and
  ``tables`` params name files to read (off unless enabled here or at export: a
  served model would otherwise read any path its server can see).

The many-to-one tables training joined onto the deals (accounts, products...) come
as the ``tables`` param, ``["NAME=PATH", ...]`` as `lead-ml score --table` takes
them (only for a model that joined tables): each is read by its training dialect on
every call and joined by key onto the leads that lack its columns, a lead without a
match scored with its columns unknown. How many leads had no match is logged
(logger ``lead_ml.pyfunc``, a warning) and kept as the model's ``unmatched``
(``model.unwrap_python_model().unmatched``: table -> leads of the last call).
Without the param, leads lacking the tables' columns read them as unknown.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from lead_ml.scorer import (
    Scorer,
    ServingSettings,
    joins_onto,
    open_pyfunc,
    predict_leads,
    read_join_tables,
    with_joins,
)
from lead_ml.tables import read_table


class LeadScorerModel(PythonModel):
    """Scores raw lead rows; params: explain (bool), activities_path (str) and,
    for a model that joined tables, tables (list of ``NAME=PATH``).

    A lead may lack any column but its id (and the created date when the model
    counts activities): the signature marks the others optional, and a missing one
    reads as unknown. A row-number id (``id: {row_number: true}``) may be absent
    too: rows are then numbered 1, 2, ... in input order, as `lead-ml score`
    numbers a file's rows (lead_ml.scorer.with_row_numbers). Every column takes
    any type (``pd.read_csv`` of the export as it is: int64 numbers, numbers in a
    category column) and is read by its kind, as `lead-ml score` reads a file
    (lead_ml.scorer.as_exported). Rejected rows come back with empty (``<NA>``,
    JSON null) scores and their ``reject_reason`` (lead_ml.scorer.predict_leads).
    """

    scorer: Scorer
    settings: ServingSettings
    #: Per table of the last call's ``tables``: leads without a row in it.
    unmatched: dict[str, int]

    def load_context(self, context: PythonModelContext) -> None:
        """Check the whole folder, then load the bundle in its artifacts."""
        self.scorer, self.settings = open_pyfunc(Path(__file__), context.artifacts)
        self.unmatched = {}

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """One output row per input lead, input order kept."""
        params = params or {}
        path = str(params.get("activities_path") or "")
        activities = (
            read_activities(self.settings.activities_file(path)) if path else None
        )
        explain_reasons = bool(params.get("explain", True))
        leads = self.joined(model_input, params.get("tables") or [])
        return predict_leads(self.scorer, leads, activities, explain_reasons)

    def joined(self, leads: pd.DataFrame, tables: list[str]) -> pd.DataFrame:
        """The leads with the ``tables`` param's tables joined by key (as given:
        none), their unmatched leads logged and kept in ``unmatched``."""
        files = self.settings.table_files(tables)
        if not files:
            return leads
        scorer = self.scorer
        read = read_join_tables(scorer, files)
        fitted = joins_onto(scorer, read, list(leads.columns), "model_input", False)
        leads, self.unmatched = with_joins(
            leads, fitted, scorer.contract.missing_values
        )
        for name, n in self.unmatched.items():
            if n:
                LOG.warning(
                    "tables %s: %s of %s leads have no row in it (their key is not "
                    "there): scored with its columns unknown, as training kept such "
                    "deals",
                    name,
                    f"{n:,}",
                    f"{len(leads):,}",
                )
        return leads


LOG = logging.getLogger("lead_ml.pyfunc")


def read_activities(path: Path) -> pd.DataFrame:
    """An activity log from .parquet or .csv (CSV cells as text; the scorer checks
    and converts them)."""
    return read_table(path, "activities_path")


mlflow.models.set_model(LeadScorerModel())
