"""The MLflow pyfunc definition of the lead-ml scorer (MLflow "models from code").

MLflow copies this file into the scorer folder and executes it whenever it loads the
folder, before any check of lead-ml can run: it only imports the installed lead-ml
(the folder ships no lead_ml code) and defines the model. Its load_context checks
every file of the folder against the manifest before the bundle is read
(lead_ml.scorer.open_pyfunc; lead_ml.scorer.verify_folder says what that does and
does not protect). Settings, from the environment where it is loaded (or from
lead_ml.scorer.load_pyfunc's arguments):

- ``LEAD_ML_EXPECT_VERSION``: refuse any other model version.
- ``LEAD_ML_ALLOW_ACTIVITIES_PATH=1``: let a request's ``activities_path`` param
  name a file to read (off unless enabled here or at export: a served model would
  otherwise read any path its server can see).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from lead_ml.scorer import Scorer, ServingSettings, open_pyfunc, predict_leads
from lead_ml.tables import read_table


class LeadScorerModel(PythonModel):
    """Scores raw lead rows; params: explain (bool), activities_path (str).

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

    def load_context(self, context: PythonModelContext) -> None:
        """Check the whole folder, then load the bundle in its artifacts."""
        self.scorer, self.settings = open_pyfunc(Path(__file__), context.artifacts)

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
        return predict_leads(self.scorer, model_input, activities, explain_reasons)


def read_activities(path: Path) -> pd.DataFrame:
    """An activity log from .parquet or .csv (CSV cells as text; the scorer checks
    and converts them)."""
    return read_table(path, "activities_path")


mlflow.models.set_model(LeadScorerModel())
