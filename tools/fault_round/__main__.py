"""``python -m tools.fault_round --kinds bad-inputs,faults --out DIR [--quick] [--only ID]``:
the fault-injection and bad-input round of issue 23, through the real CLI.

Prints one JSON object (per kind and overall: tried, ok, failures with probe id and reason) and
writes it to DIR/round.json; each probe's files stay under DIR/<kind>/. Exit 0 whether or not
probes fail (the figures are the result); 2 on bad flags.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.fault_round import bad_inputs, faults
from tools.fault_round.common import REPO

KINDS = {"bad-inputs": bad_inputs, "faults": faults}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fault_round", description=__doc__)
    parser.add_argument(
        "--kinds", default="bad-inputs,faults", help="comma-separated: " + ", ".join(KINDS)
    )
    parser.add_argument("--out", required=True, type=Path, help="a new or empty folder")
    parser.add_argument("--quick", action="store_true", help="a few probes of each kind")
    parser.add_argument(
        "--only", action="append", help="probe id, or a prefix ending in * (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="fault probes at once (default 2)")
    args = parser.parse_args(argv)
    # A shell's background job inherits SIGINT ignored, and so would every CLI call we start: the
    # SIGINT probes need the default disposition in the children (exec resets a handler, not an
    # ignore).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    kinds = args.kinds.split(",")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"--kinds={unknown[0]!r} is not a kind; allowed: {', '.join(KINDS)}")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out={str(args.out)!r} is not empty; give a new folder")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    started = time.time()
    report: dict = {
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_before": os.getloadavg(),
        "kinds": {},
    }

    def log(outcome):
        mark = "ok  " if outcome.ok else "FAIL"
        print(f"{mark} {outcome.probe} ({outcome.seconds:.1f} s) {outcome.reason}", file=sys.stderr)

    for kind in kinds:
        outcomes = KINDS[kind].run(out / kind, args.only, args.quick, log, args.jobs)
        report["kinds"][kind] = {
            "tried": len(outcomes),
            "ok": sum(o.ok for o in outcomes),
            "failures": [{"probe": o.probe, "reason": o.reason} for o in outcomes if not o.ok],
        }
    report["load_after"] = os.getloadavg()
    report["seconds"] = round(time.time() - started)
    report["overall"] = {
        "tried": sum(k["tried"] for k in report["kinds"].values()),
        "ok": sum(k["ok"] for k in report["kinds"].values()),
    }
    text = json.dumps(report, indent=1, ensure_ascii=False)
    (out / "round.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
