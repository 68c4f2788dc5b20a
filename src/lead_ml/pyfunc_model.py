"""The MLflow pyfunc definition of the lead-ml scorer (MLflow "models from code").

MLflow copies this file into the model folder and runs it on load: no pickles. The
bundle it loads is checked file by file (see lead_ml.scorer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from lead_ml.scorer import Scorer, load_scorer
from lead_ml.tables import read_table


class LeadScorerModel(PythonModel):
    """Scores raw lead rows; params: explain (bool), activities_path (str)."""

    scorer: Scorer

    def load_context(self, context: PythonModelContext) -> None:
        """Load and verify the bundle shipped in the model's artifacts."""
        self.scorer = load_scorer(context.artifacts["bundle"])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """One output row per input lead, input order kept."""
        params = params or {}
        activities_path = params.get("activities_path") or ""
        activities = read_activities(Path(activities_path)) if activities_path else None
        return self.scorer.score(
            model_input, activities, explain_reasons=bool(params.get("explain", True))
        )


def read_activities(path: Path) -> pd.DataFrame:
    """An activity log from .parquet or .csv (CSV cells as text; the scorer checks
    and converts them)."""
    return read_table(path, "activities_path")


mlflow.models.set_model(LeadScorerModel())
