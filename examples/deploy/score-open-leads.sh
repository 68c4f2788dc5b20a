#!/usr/bin/env bash
# The scheduled batch job: score the CRM's export of open leads with the model the
# `champion` alias names (`lead-ml promote` moves it). cron and Airflow run this file.
#
# Exit codes, for the scheduler to alert on (lead-ml score's own):
#   0   done: every row scored or rejected with a reason (rejects beside the output)
#   2   a fault: a missing or malformed input, a scorer folder that fails its check,
#       a model version other than EXPECT_VERSION, an unknown alias...
#   3   every row rejected: nothing was scored (the export's columns changed?)
#   128+N  stopped by signal N; the previous output is kept whole
#
# Settings (environment): LEAD_ML_HOME (the project folder, default /srv/lead-ml),
# MODEL (default models:/lead-ml-scorer@champion; a scorer folder works too),
# INPUT, OUTPUT, EXPECT_VERSION (optional pin: lead-ml-scorer:<64 hex>, the version
# you validated; a promotion then needs the pin changed too), LEAD_ML (the command,
# default the project's .venv/bin/lead-ml) and MLFLOW_TRACKING_URI (the store that
# holds the registered model, for models:/ references).
set -euo pipefail

cd "${LEAD_ML_HOME:-/srv/lead-ml}"
lead_ml=${LEAD_ML:-.venv/bin/lead-ml}
model=${MODEL:-models:/lead-ml-scorer@champion}
input=${INPUT:-exports/open_leads.csv}
output=${OUTPUT:-scores/open_leads-$(date -u +%F).parquet}

arguments=(score --model "$model" --input "$input" --output "$output")
arguments+=(--summary "${output%.*}.summary.json")
if [[ -n "${EXPECT_VERSION:-}" ]]; then
    arguments+=(--expect-version "$EXPECT_VERSION")
fi
exec "$lead_ml" "${arguments[@]}"
