"""The gallery web app (`atelier web`): server-rendered pages over the catalog and the store.

A thin presentation layer: the pages call the same query functions as the CLI (`db.queries`)
and only parse requests and render templates. It works with JavaScript off and loads nothing
from outside the app (no CDN), so it works offline.
"""
