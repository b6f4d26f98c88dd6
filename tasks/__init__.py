"""Prefect tasks: where the style engine meets the catalog and the artifact store."""
