"""Memory of print-size files: what a 10,800 x 7,200 render costs on its way to the store and out.

Each step runs in a fresh process. Its peak resident memory is reset (Linux `clear_refs`) once
the render is in memory, so the figure is what the step itself adds above the pixels. Side by
side, in one run:

- thumbnail: a full-size copy then Pillow's `thumbnail` (before) against `style_engine.images.thumbnail`;
- upload: the PNG encoded to bytes then `put_bytes` (before) against encoded to a temporary file
  then `put_file` (`tasks.job.upload_outputs`), into a local store;
- export: `get_bytes` then writing the file (before) against `get_file` streaming into it
  (`artworks export --format png`).

The render is noise, so its PNG is about as big as its pixels (a painting compresses better).

Usage: python bench/big_files.py [--width 10800] [--height 7200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from PIL import Image
    from storage.local import LocalStore
    from style_engine.images import png_bytes, save_png, thumbnail

    def memory(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    width, height, scratch = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    store = LocalStore(scratch / "store")
    render = Image.effect_noise((width, height), 80).convert("RGB")
    stored = store.put_file(scratch / "master.png", suffix=".png") if (scratch / "master.png").exists() else None
    Path("/proc/self/clear_refs").write_text("5")
    before, started = memory("VmRSS:"), time.perf_counter()
""")

STEPS = {
    ("thumbnail", "before"): "small = render.copy(); small.thumbnail((256, 256), Image.Resampling.LANCZOS)",
    ("thumbnail", "now"): "small = thumbnail(render, 256)",
    ("upload", "before"): "store.put_bytes(png_bytes(render, {'atelier:job': '1'}), suffix='.png')",
    ("upload", "now"): ("save_png(render, scratch / 'out.png', {'atelier:job': '1'}); "
                        "store.put_file(scratch / 'out.png', suffix='.png')"),
    ("export", "before"): "(scratch / 'export.png').write_bytes(store.get_bytes(stored.uri))",
    ("export", "now"): "store.get_file(stored.uri, scratch / 'export.png')",
}
REPORT = "print(memory('VmHWM:') - before, time.perf_counter() - started)"


def measure(step: str, width: int, height: int, scratch: Path) -> tuple[int, float]:
    """Peak bytes the step adds above the render, and its seconds, in a fresh process."""
    code = PRELUDE + STEPS[step] + "\n" + REPORT
    done = subprocess.run([sys.executable, "-c", code, str(width), str(height), str(scratch)], cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          check=True)
    grown, seconds = done.stdout.split()
    return int(grown), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10_800)
    parser.add_argument("--height", type=int, default=7_200)
    args = parser.parse_args()
    if not Path("/proc/self/clear_refs").exists():
        sys.exit("needs Linux (/proc/self/clear_refs) to reset the peak memory")
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as folder:
        scratch = Path(folder)
        from PIL import Image  # the stored master that the export steps read back

        sys.path.insert(0, str(ROOT))
        from style_engine.images import save_png

        save_png(Image.effect_noise((args.width, args.height), 80).convert("RGB"), scratch / "master.png")
        png_mib = (scratch / "master.png").stat().st_size / 2**20
        print(f"{args.width}x{args.height} render: {args.width * args.height * 3 / 2**20:.0f} MiB of RGB, "
              f"PNG {png_mib:.0f} MiB; peak memory each step adds above the render, in a fresh process")
        print(f"{'step':<10} {'before MiB':>11} {'now MiB':>9} {'ratio':>7} {'before s':>9} {'now s':>7}")
        for name in ("thumbnail", "upload", "export"):
            old, old_s = measure((name, "before"), args.width, args.height, scratch)
            new, new_s = measure((name, "now"), args.width, args.height, scratch)
            ratio = old / new if new > 0 else float("inf")
            print(f"{name:<10} {old / 2**20:>11.1f} {new / 2**20:>9.1f} {ratio:>6.1f}x {old_s:>9.2f} {new_s:>7.2f}")


if __name__ == "__main__":
    main()
