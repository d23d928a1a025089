"""Graded feedback where students push: `grader ci github` for GitHub Actions (see docs/github-classroom.md).

Modules: github_env (what the runner tells us), github_api (a small REST client that never logs its token),
annotations (workflow commands and check-run annotations), feedback (the report's route to the pull request),
cli (the typer command). Only cli imports the grading pipeline, and only inside the command: torch is slow to
import and none of the rest needs it.
"""
