"""Benchmark: one film on one host against the same film shared by several hosts (issue 20).

Not a test. A clip of about ``--segments`` segments (generated: shots of panning textures joined at
known cuts, or ``--clip PATH``) is added to a fresh catalog (SQLite, WAL) and file store as one
``video_gatys`` job, and rendered to the end (planning, every segment, the assembly) by 1, then
``--hosts`` worker processes (ATELIER_HOST host-1..N), each with ``--threads`` torch threads: a host
stands for one GPU, so each gets the same compute and the speed-up measures the sharing itself.
Hosts work through the catalog exactly as flow runs do (claim, perform_job: leases, Runs,
checkpoints, the guarded assembly), without a Prefect server: Prefect adds ~50 ms of API work
per segment, the same with one host or many.

Prints, measured side by side in one run: wall-clock per host count and the speed-up, segments
per host, and the planning pass's cost (decoding at 96 px plus style_engine.video.shots.find_cuts) as a
share of the one-host wall-clock. With ``--segment-lengths`` it also renders the same clip with
each segment length on ``--hosts`` hosts: the per-segment overhead against parallelism, from
which the default ATELIER_SEGMENT_FRAMES was chosen (README, "Films across the fleet").

``--cuda``: with a GPU at hand, instead (same script, engine only: the device machine has no
Prefect, SQLAlchemy or boto3), frames/s on one GPU at 720p (1280 px long side) for Ruder's method
and for fast video (an untrained Johnson network: its speed does not depend on its weights).

Usage:
  .venv/bin/python bench/video_fleet.py [--segments 8] [--segment-frames 6] [--size 64] [--hosts 2] [--threads 1]
      [--iterations 4] [--frame-iterations 2] [--segment-lengths 3 6 12] [--clip PATH]
  python3 bench/video_fleet.py --cuda [--frames 24] [--size 1280]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ATELIER = [sys.executable, "-c", "from atelier.cli import app; app()"]


def make_clip(folder: Path, shots: int, shot_frames: int, size: int) -> Path:
    """Shots of different panning textures, joined at known frames, with a tone under them."""
    sys.path.insert(0, str(REPO))
    from tests.video_clips import panning_frames, write_clip

    height, width = (size * 3 // 4) // 2 * 2, size
    frames = [f for shot in range(shots) for f in panning_frames(shot_frames, height=height, width=width, seed=shot)]
    return write_clip(folder / "film.mp4", frames, fps=24, audio=True)


def make_style(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / "style.png"
    Image.fromarray(data.coffee()).resize((128, 96)).save(path)
    return path


def environment(folder: Path, segment_frames: int, threads: int) -> dict[str, str]:
    return {
        **os.environ, "PYTHONPATH": str(REPO), "ATELIER_DATABASE_URL": f"sqlite:///{folder / 'catalog.db'}",
        "ATELIER_STORE_URL": f"file://{folder / 'store'}", "ATELIER_CACHE_DIR": str(folder / "cache"),
        "ATELIER_DEVICE": "cpu", "ATELIER_SEGMENT_FRAMES": str(segment_frames), "ATELIER_LEASE_SECONDS": "600",
        "ATELIER_SLOT_DIR": str(folder / "slots"), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
        "DO_NOT_TRACK": "1",
    }


def prepare(folder: Path, clip: Path, style: Path, env: dict[str, str], params: list[str]) -> None:
    """A fresh catalog with the clip, the style and the one film job."""
    folder.mkdir(parents=True, exist_ok=True)
    for command in (["db", "upgrade"], ["catalog", "add", str(clip), "--role", "video", "--tag", "film"],
                    ["catalog", "add", str(style), "--role", "style", "--tag", "paint"],
                    ["jobs", "matrix", "--contents", "tag:film", "--styles", "tag:paint", "--method", "video_gatys",
                     *[arg for p in params for arg in ("--param", p)]]):
        subprocess.run([*ATELIER, *command], env=env, check=True, capture_output=True, cwd=folder)


def render(folder: Path, env: dict[str, str], hosts: int) -> tuple[float, dict[str, int]]:
    """Wall-clock seconds for `hosts` worker processes to finish the film; segments run per host."""
    started = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, __file__, "--worker"], env={**env, "ATELIER_HOST": f"host-{i + 1}"},
                                cwd=folder) for i in range(hosts)]
    for worker in workers:
        if worker.wait() != 0:
            raise SystemExit(f"a worker failed (exit {worker.returncode})")
    seconds = time.perf_counter() - started
    sys.path.insert(0, str(REPO))
    from db.models import Job, Run
    from db.session import open_catalog

    catalog = open_catalog(env["ATELIER_DATABASE_URL"])
    with catalog.reader() as session:
        film = session.query(Job).filter(Job.parent_job_id.is_(None)).one()
        if film.status != "succeeded":
            raise SystemExit(f"the film ended {film.status}: {film.last_error_type}: {film.last_error_message}")
        per_host: dict[str, int] = {}
        for run in session.query(Run).join(Job).filter(Job.parent_job_id == film.id, Run.status == "succeeded"):
            per_host[run.host] = per_host.get(run.host, 0) + 1
    catalog.dispose()
    return seconds, per_host


def work() -> None:
    """One host: claim and run jobs through the catalog until the film is done (or failed)."""
    import logging

    import torch

    from db.claims import claim_jobs
    from db.models import Job
    from tasks.job import RunIds, perform_job
    from tasks.workshop import WorkshopConfig, workshop_for
    from worker_settings import read_worker_settings

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    logging.basicConfig(level=logging.WARNING)
    logger = logging.getLogger("bench.video_fleet")
    workshop = workshop_for(WorkshopConfig.from_settings(read_worker_settings()))
    while True:
        claimed = claim_jobs(workshop.catalog, 1, workshop.worker, workshop.config.lease_seconds)
        if claimed:
            perform_job(workshop, claimed[0], RunIds(None, None), final_attempt=True, logger=logger)
            continue
        with workshop.catalog.reader() as session:
            film = session.query(Job).filter(Job.parent_job_id.is_(None)).one()
            if film.status in ("succeeded", "failed"):
                return
        time.sleep(0.1)  # the film is being planned, or its last segments run elsewhere


def planning_seconds(clip: Path) -> float:
    """The planning pass alone: decode at the planning size and find the cuts."""
    from style_engine.video.shots import PLANNING_SIZE, find_cuts
    from tasks.video_io import probe_video, read_frames

    started = time.perf_counter()
    info = probe_video(clip)
    find_cuts(read_frames(clip, info, size=PLANNING_SIZE))
    return time.perf_counter() - started


def fleet(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-video-fleet-"))
    try:
        clip = args.clip or make_clip(workdir, args.segments, args.segment_frames, args.size)
        style = make_style(workdir)
        params = [f"size={args.size}", f"iterations={args.iterations or 4}",
                  f"frame_iterations={args.frame_iterations or 2}", "precision=fp32"]
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; clip {clip}; "
              f"{args.threads} torch thread(s) per host; params {' '.join(params)}")
        results = {}
        for hosts in sorted({1, args.hosts}):
            folder = workdir / f"hosts-{hosts}"
            env = environment(folder, args.segment_frames, args.threads)
            prepare(folder, clip, style, env, params)
            seconds, per_host = render(folder, env, hosts)
            results[hosts] = seconds
            print(f"{hosts} host(s): {seconds:.1f} s wall-clock; segments per host {dict(sorted(per_host.items()))}")
        plan = planning_seconds(clip)
        print(f"speed-up with {args.hosts} hosts: {results[1] / results[args.hosts]:.2f}x")
        print(f"planning pass: {plan:.2f} s, {100 * plan / results[1]:.1f}% of the one-host wall-clock")
        for length in args.segment_lengths:
            folder = workdir / f"length-{length}"
            env = environment(folder, length, args.threads)
            prepare(folder, clip, style, env, params)
            seconds, per_host = render(folder, env, args.hosts)
            shared = f"{sum(per_host.values())} segments {dict(sorted(per_host.items()))}" if per_host else "one piece"
            print(f"segments of {length} frames on {args.hosts} hosts: {seconds:.1f} s; {shared}")
        if args.json:
            Path(args.json).write_text(json.dumps({"seconds_by_hosts": results, "planning_s": plan}))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cuda(args: argparse.Namespace) -> None:
    """Frames/s on one GPU at 720p: Ruder's method and fast video, engine only."""
    import torch
    from PIL import Image
    from skimage import data

    sys.path.insert(0, str(REPO))
    from style_engine.itn.network import build_network
    from style_engine.params import parse_params
    from style_engine.video.ruder import ruder_gatys
    from style_engine.video.itn import itn_video
    from tests.video_clips import panning_frames

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.cpu_dry_run:
        raise SystemExit("--cuda: no GPU here (add --cpu-dry-run to check the script on the CPU)")
    height = args.size * 9 // 16 // 2 * 2
    frames = panning_frames(args.frames, height=height, width=args.size, step=3)
    style = Image.fromarray(data.coffee())
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; {args.frames} frames of "
          f"{args.size}x{height}")
    budgets = {key: value for key, value in (("iterations", args.iterations), ("frame_iterations", args.frame_iterations))
               if value is not None}  # the method's defaults unless given
    ruder = parse_params("video_gatys", {"size": args.size, **budgets})
    started = time.perf_counter()
    for _ in ruder_gatys(frames, [style], ruder, device=device):
        pass
    seconds = time.perf_counter() - started
    print(f"Ruder ({ruder.iterations} evaluations first frame, at most {ruder.frame_iterations} later): "
          f"{args.frames / seconds:.2f} frames/s")
    net = build_network("johnson", seed=0).to(device).eval()
    fast = parse_params("video_itn", {"model": "untrained", "size": args.size})
    for label, frames_run in (("warm-up", frames[:2]), ("fast video", frames)):
        started = time.perf_counter()
        with torch.inference_mode():
            for _ in itn_video(frames_run, net, fast, device=device):
                pass
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    print(f"fast video (Johnson network, stabilized, DIS flow): {len(frames) / seconds:.2f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--segments", type=int, default=8, help="shots in the generated clip (one segment each)")
    parser.add_argument("--segment-frames", type=int, default=6)
    parser.add_argument("--size", type=int, help="long side in px (default 64; 1280 with --cuda)")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per host (a host stands for a GPU)")
    parser.add_argument("--iterations", type=int, help="first frame's evaluations (4; the method's default with --cuda)")
    parser.add_argument("--frame-iterations", type=int, help="later frames' (2; the method's default with --cuda)")
    parser.add_argument("--segment-lengths", type=int, nargs="*", default=[])
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--json")
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    args.size = args.size or (1280 if args.cuda else 64)
    if args.worker:
        work()
    elif args.cuda:
        cuda(args)
    else:
        fleet(args)


if __name__ == "__main__":
    main()
