"""The error a service raises for a request its caller must fix."""

from __future__ import annotations


class BadInput(ValueError):
    """Bad input: the message names the input and what is wrong with it (the CLI prints it
    as one line and exits 2; the web app answers 400)."""
