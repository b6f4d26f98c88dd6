"""Prefect flows: choose the work from the catalog, fan it out to tasks, report on it."""
