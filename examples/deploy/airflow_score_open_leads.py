"""An Airflow DAG that runs the scheduled batch job (score-open-leads.sh) every weekday.

Copy it into the DAGs folder and set LEAD_ML_HOME below. The task fails, and Airflow
alerts (email_on_failure, or your on_failure_callback), on any non-zero exit of
`lead-ml score`: 2 a fault (bad input, a scorer that fails its check or is not the
pinned version), 3 every row rejected (nothing scored). One retry covers a passing
hiccup (a store or share briefly away); a fault in the export itself fails again and
alerts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

LEAD_ML_HOME = "/srv/lead-ml"
#: The job's settings (see score-open-leads.sh); {{ ds }}: the run's date.
SCORE_ENV = {
    "LEAD_ML_HOME": LEAD_ML_HOME,
    "MODEL": "models:/lead-ml-scorer@champion",
    "INPUT": "exports/open_leads.csv",
    "OUTPUT": "scores/open_leads-{{ ds }}.parquet",
    "MLFLOW_TRACKING_URI": f"sqlite:///{LEAD_ML_HOME}/mlflow.db",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}

with DAG(
    dag_id="lead_ml_score_open_leads",
    schedule="15 6 * * 1-5",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={
        "owner": "revops",
        "email": ["revops-alerts@example.com"],
        "email_on_failure": True,
        "retries": 1,
        "retry_delay": timedelta(minutes=10),
    },
    tags=["lead-ml"],
) as dag:
    score_open_leads = BashOperator(
        task_id="score_open_leads",
        # The trailing space stops Airflow reading a .sh path as a Jinja template file.
        bash_command=f"{LEAD_ML_HOME}/examples/deploy/score-open-leads.sh ",
        env=SCORE_ENV,
        append_env=True,
        execution_timeout=timedelta(hours=1),
    )
