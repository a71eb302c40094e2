"""`roomc lint` vs `check-jsonschema` on 1,000 generated room files, side by side in one run.

Both validate every file against schema/roomc.schema.json; roomc also checks YAML traps,
merges the files into one policy and runs every lint rule. Each tool runs as one process
over all files, as in CI, the two taking turns; the best of --runs is reported, by wall clock
and by CPU time (user + system of the process: on a shared machine the steadier of the two).
roomc's modules are compiled to bytecode first, as an installed package's are (check-jsonschema's
were when pip installed it): with PYTHONDONTWRITEBYTECODE set, an editable install would
otherwise recompile roomc's sources on every run.
Usage: python bench/lint_bench.py [--files 1000] [--runs 3]
"""
from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema" / "roomc.schema.json"

TEMPLATE = """# yaml-language-server: $schema=../schema/roomc.schema.json
roomc: 1
rooms:
  room{n}:
    name: "room{n}-{{{{ query.room }}}}"
    maxParticipants: {cap}
    beep: true
    waitUrl: https://cdn.example.com/hold-{n}.mp3
    whenFull:
      - say: "Room {n} is full."
      - hangup: {{}}
    roles:
      host:
        when: "query.host == '1'"
        say: "You are the host of room {n}."
        startOnEnter: true
        endOnExit: true
      guest:
        say: "Please wait for the host."
        startOnEnter: false
routes:
  /room{n}/join: {{join: room{n}}}
"""
HEADER = """roomc: 1
server:
  publicUrl: https://rooms.example.com
  signatureSecretEnv: SAUTIKIT_VOICE_SECRET
routes:
  /events: events
"""


def generate(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    (folder / "000-server.yaml").write_text(HEADER)
    files = [folder / "000-server.yaml"]
    for n in range(1, count):
        path = folder / f"{n:04d}.yaml"
        path.write_text(TEMPLATE.format(n=n, cap=5 + n % 20))
        files.append(path)
    return files


def timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall-clock and CPU seconds (user + system of the child) of one run."""
    before = os.times()
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roomc-lint-bench-"))
    try:
        files = generate(work / "rooms", args.files)
        check_jsonschema = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
        for folder in ("compiler", "cli", "runtime", "schema", "sautikit"):
            compileall.compile_dir(ROOT / folder, quiet=1)
        commands = {"roomc": [sys.executable, "-c", "from roomc.cli import run; run()", "lint", str(work / "rooms")],
                    "peer": [check_jsonschema, "--schemafile", str(SCHEMA), *map(str, files)]}
        runs: dict[str, list[tuple[float, float, subprocess.CompletedProcess]]] = {"roomc": [], "peer": []}
        for _ in range(args.runs):  # taking turns, so a burst of load elsewhere falls on both
            for name, command in commands.items():
                runs[name].append(timed(command))
        roomc_time, peer_time = (min(r[0] for r in runs[n]) for n in ("roomc", "peer"))
        roomc_cpu, peer_cpu = (min(r[1] for r in runs[n]) for n in ("roomc", "peer"))
        roomc, peer = runs["roomc"][-1][2], runs["peer"][-1][2]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if roomc.returncode != 0 or peer.returncode != 0:
        sys.exit(f"a tool reported problems on valid files:\n{roomc.stdout[-2000:]}\n{peer.stdout[-2000:]}")
    rules = len(__import__("roomc.compiler.rules", fromlist=["RULES"]).RULES)
    print(f"\n{args.files} files, best of {args.runs} runs each, taking turns, one process per run\n")
    print("| tool | what it checks | wall seconds | CPU seconds |")
    print("| --- | --- | ---: | ---: |")
    print(f"| roomc lint | schema + YAML traps + merge + {rules} rules | {roomc_time:.2f} | {roomc_cpu:.2f} |")
    print(f"| check-jsonschema | schema | {peer_time:.2f} | {peer_cpu:.2f} |")
    print(f"\nroomc lint is {peer_time / roomc_time:.1f}x faster than check-jsonschema by wall clock, "
          f"{peer_cpu / roomc_cpu:.1f}x by CPU time")


if __name__ == "__main__":
    main()
