"""What the command line and the web app do, as plain functions: typed values in, typed values out.

No Typer, no printing, no settings: callers hand in the open catalog, the store and the
limits, and present the result their own way. A request the caller must fix raises
`BadInput` (or the catalog's `InvalidRequest` / `NotFound`), whose message names the input.
"""
