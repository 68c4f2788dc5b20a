"""Smoke: every source's project builds and scores its own leads."""

from __future__ import annotations

from projects import Project

from lead_ml.scorer import load_scorer


def test_project_scores_its_leads(project: Project) -> None:
    scorer = load_scorer(project.path("models/scorer"))
    leads = project.leads().head(200)
    scored = scorer.score(leads, project.activities())
    assert scored["reject_reason"].isna().all()
    assert len(scored) == len(leads)
