"""Issue 14 items 7 and 8: output that people can read at 80 columns (the width when output is
not a terminal): no word broken across lines, paths and URLs whole on lines of their own,
`jobs show` runs as lines instead of a JSON blob, and the parameters that tell variants apart."""

from __future__ import annotations

import pytest

from db.claims import claim_jobs
from db.runs import ArtifactRecord, complete_run, fail_run, start_run
from db.session import open_catalog
from tests.test_cli_catalog import _json, cli, gallery, pictures  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e

LONG_URI = "file:///a/rather/long/store/folder/objects/cc/" + "c" * 64 + ".png"


@pytest.fixture
def worked(gallery, catalog_url):
    """Two variants of one pair (64 px plain, 96 px luminance), one succeeded, one failed."""
    plain = _json(gallery("jobs", "add", "--content", "city", "--style", "waves", "--method", "gatys",
                          "--param", "size=64", "--json"))["id"]
    kept = _json(gallery("jobs", "add", "--content", "city", "--style", "waves", "--method", "gatys",
                         "--param", "size=96", "--param", "preserve_color=luminance", "--json"))["id"]
    catalog = open_catalog(catalog_url)
    claim_jobs(catalog, 2, "w", 60)
    complete_run(catalog, start_run(catalog, plain, "w", device="cpu", host="studio"), "w", artifacts=[
        ArtifactRecord("output", LONG_URI, "c" * 64, 10, "image/png", 64, 48)])
    fail_run(catalog, start_run(catalog, kept, "w"), "w", error_type="InvalidInputError",
             message="a long message " * 10)
    catalog.dispose()
    return gallery, plain, kept


def _lines(result) -> list[str]:
    return result.stdout.splitlines()


def test_listings_fit_80_columns_and_show_the_variants(worked):
    cli, plain, kept = worked
    for args in (["jobs", "ls"], ["artworks", "ls"], ["runs", "ls"], ["catalog", "ls"]):
        lines = _lines(cli(*args))
        assert lines and all(len(line) <= 80 for line in lines), (args, lines)
        assert "…" not in "".join(lines), args  # nothing cut off either
    jobs = _lines(cli("jobs", "ls"))
    assert jobs[2].split()[0] == str(kept) and jobs[3].split()[0] == str(plain)  # newest first
    assert "gatys 96px" in jobs[2] and "luminance" in " ".join(jobs[2:4]) and "gatys 64px" in " ".join(jobs[3:])
    assert "InvalidInput" in jobs[2] and "waves" in jobs[2] and "1:city" in jobs[2]
    assert "64px" in "\n".join(_lines(cli("artworks", "ls")))


def test_jobs_show_prints_runs_as_lines_and_uris_whole(worked):
    cli, plain, kept = worked
    text = cli("jobs", "show", plain).stdout
    assert "runs (1)" in text and '{"' not in text
    assert LONG_URI in text.splitlines()[-1]  # a whole line of its own, never wrapped
    failed = cli("jobs", "show", kept).stdout
    assert "InvalidInputError: a long message" in failed and "preserve_color=luminance" in failed


def test_runs_and_artworks_show_print_uris_whole_and_no_json(worked):
    cli, plain, _ = worked
    (artwork,) = _json(cli("artworks", "ls", "--json"))
    for args in (["artworks", "show", artwork["id"]], ["runs", "show", artwork["run_id"]]):
        text = cli(*args).stdout
        assert any(line.strip() == LONG_URI for line in text.splitlines()), args  # whole, on its own line
        assert '{"' not in text, args
