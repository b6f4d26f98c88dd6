"""Issue 19, big files: a print-size render (10,800 x 7,200 px, about 200 MB of PNG) goes to the
store without its PNG being held in memory, its thumbnail is made without a full-size copy of its
pixels, and the contact sheet reads the small stored thumbnails, never the artworks.

Measured at small sizes, on what the sizes scale with: the bytes Python holds while uploading
(tracemalloc), and the resident memory of a process while it makes a thumbnail (Linux's peak,
reset just before).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from tests.fixtures.prefect import catalog_rows, create_gallery_jobs, write_gallery_inputs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.unit
def test_an_output_goes_to_the_store_as_a_stream_not_as_bytes_in_memory(tmp_path: Path) -> None:
    from storage.local import LocalStore
    from tasks.job import upload_outputs

    render = Image.effect_noise((2000, 1500), 80).convert("RGB")  # noise: its PNG is as big as its pixels
    spec = SimpleNamespace(id=1, method="noop", params={"size": 2000}, content=SimpleNamespace(sha256="0" * 64),
                           styles=[SimpleNamespace(sha256="1" * 64)])
    workshop = SimpleNamespace(store=LocalStore(tmp_path / "store"))  # all that uploading uses
    upload_outputs(workshop, spec, render.resize((64, 48)))  # type: ignore[arg-type]  # imports done before measuring

    tracemalloc.start()
    try:
        output, thumbnail = upload_outputs(workshop, spec, render)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert output.bytes > 3_000_000 and thumbnail.width == 256
    assert peak < output.bytes / 3, f"{peak:,} bytes held while uploading a {output.bytes:,}-byte PNG"
    stored = workshop.store.path_for_uri(output.uri)
    with Image.open(stored) as back:
        assert back.tobytes() == render.tobytes() and back.text["atelier:method"] == "noop"


THUMBNAIL_PEAK = textwrap.dedent("""
    from pathlib import Path
    from PIL import Image
    from style_engine.images import thumbnail

    def memory(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    render = Image.effect_noise((4000, 3000), 60).convert("RGB")
    Path("/proc/self/clear_refs").write_text("5")  # the peak so far forgets the render's making
    before = memory("VmRSS:")
    small = thumbnail(render, 256)
    print(small.size, memory("VmHWM:") - before, len(render.tobytes()))
""")


@pytest.mark.unit
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak memory")
def test_a_thumbnail_of_a_big_render_makes_no_full_size_copy() -> None:
    done = subprocess.run([sys.executable, "-c", THUMBNAIL_PEAK], capture_output=True, text=True, check=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    size, grown, render_bytes = done.stdout.rsplit(" ", 2)
    assert size.strip() == "(256, 192)"
    assert int(grown) < int(render_bytes) / 4, f"making a thumbnail grew the process by {int(grown):,} bytes"


@pytest.mark.integration
def test_the_contact_sheet_reads_the_stored_thumbnails_never_the_artworks(prefect_api, atelier, tmp_path, monkeypatch):
    from db.models import Artifact
    from storage.local import LocalStore

    reads: list[str] = []
    for name in ("get_bytes", "get_file"):
        real = getattr(LocalStore, name)
        monkeypatch.setattr(LocalStore, name, lambda self, uri, *a, _real=real, **k: reads.append(uri) or _real(self, uri, *a, **k))
    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    write_gallery_inputs(tmp_path / "inputs", contents=1, styles=2, side=48)
    create_gallery_jobs(app, tmp_path / "inputs", "noop", "size=40")
    reads.clear()
    app.cli("gallery", "run", expect=0)

    made = {kind: {a.uri for a in catalog_rows(app, Artifact) if a.kind == kind} for kind in ("output", "thumbnail")}
    assert len(made["output"]) == 2 and made["thumbnail"] <= set(reads)
    assert not made["output"] & set(reads), "an artwork was read back from the store"


@pytest.mark.integration
def test_a_big_output_goes_up_to_s3_in_parts_and_comes_back_verified(s3_store_url, tmp_path: Path) -> None:
    import hashlib

    from storage.s3 import MiB, S3Store
    from tasks.job import upload_outputs

    store = S3Store.from_url(s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url,
                             multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)  # S3's smallest part
    render = Image.effect_noise((2000, 1500), 80).convert("RGB")
    spec = SimpleNamespace(id=1, method="noop", params={"size": 2000}, content=SimpleNamespace(sha256="0" * 64),
                           styles=[SimpleNamespace(sha256="1" * 64)])
    output, thumbnail = upload_outputs(SimpleNamespace(store=store), spec, render)  # type: ignore[arg-type]

    parts = -(-output.bytes // (5 * MiB))
    assert parts >= 2
    head = store.client.head_object(Bucket=store.bucket, Key=store.object_key(output.uri))
    assert head["ETag"].strip('"').endswith(f"-{parts}") and head["Metadata"]["sha256"] == output.sha256
    small = store.client.head_object(Bucket=store.bucket, Key=store.object_key(thumbnail.uri))
    assert "-" not in small["ETag"]

    back = store.get_file(output.uri, tmp_path / "back.png", sha256=output.sha256)
    assert hashlib.sha256(back.read_bytes()).hexdigest() == output.sha256
    with Image.open(back) as picture:
        assert picture.tobytes() == render.tobytes()
