"""`roomc lint` vs `check-jsonschema` on 1,000 generated room files, side by side in one run.

Both validate every file against schema/roomc.schema.json; roomc also checks YAML traps,
merges the files into one policy and runs every lint rule. Each tool runs as one process
over all files, as in CI; the best of --runs wall-clock times is reported.
Usage: python bench/lint_bench.py [--files 1000] [--runs 3]
"""
from __future__ import annotations

import argparse
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


def best_of(command: list[str], runs: int) -> tuple[float, subprocess.CompletedProcess]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roomc-lint-bench-"))
    try:
        files = generate(work / "rooms", args.files)
        check_jsonschema = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
        roomc_time, roomc = best_of([sys.executable, "-c", "from roomc.cli import run; run()", "lint",
                                     str(work / "rooms")], args.runs)
        peer_time, peer = best_of([check_jsonschema, "--schemafile", str(SCHEMA), *map(str, files)], args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if roomc.returncode != 0 or peer.returncode != 0:
        sys.exit(f"a tool reported problems on valid files:\n{roomc.stdout[-2000:]}\n{peer.stdout[-2000:]}")
    print(f"\n{args.files} files, best of {args.runs} runs, one process each\n")
    print("| tool | what it checks | seconds |")
    print("| --- | --- | ---: |")
    print(f"| roomc lint | schema + YAML traps + merge + {len(__import__('roomc.compiler.rules', fromlist=['RULES']).RULES)} rules | {roomc_time:.2f} |")
    print(f"| check-jsonschema | schema | {peer_time:.2f} |")
    print(f"\nroomc lint is {peer_time / roomc_time:.1f}x faster than check-jsonschema")


if __name__ == "__main__":
    main()
