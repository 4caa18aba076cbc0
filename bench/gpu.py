"""The GPU measurements of issue 15 in one command; prints one JSON object per measurement.

    python -m bench.gpu                 # about 5-8 minutes on one H100/H200-class GPU
    python -m bench.gpu --quick         # size12m only, 1 and 4 seeds (about 2-3 minutes)

Runs `bench.train_step` cases, each in its own process, with the compute dtype
`auto` (bfloat16 on a GPU, float32 parameters), B16 x T64:
- updates/s and model FLOP utilisation (matmul/convolution FLOPs counted from
  the jaxpr / seconds / the measured bfloat16 8192^2 matmul peak of the same
  GPU) for DMC proprio and the 64x64 image case at size12m and size200m;
- aggregate updates/s of 1, 4 and 16 seeds packed in one vmapped step
  (`--seeds`), DMC proprio size12m.
Refuses to run without a GPU (exit 2): the CPU figures come from
`bench.train_step` and `bench.compare_reference`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def plan(quick: bool) -> list[tuple[str, str, int]]:
    """(case, size, seeds) of every measurement."""
    sizes = ["12m"] if quick else ["12m", "200m"]
    single = [(case, size, 1) for size in sizes for case in ("proprio_12m", "image_1m")]
    packed = [("proprio_12m", "12m", k) for k in ((4,) if quick else (4, 16))]
    return single + packed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="size12m only, 1 and 4 seeds")
    parser.add_argument("--updates", type=int, default=10, help="timed updates per measurement")
    args = parser.parse_args(argv)
    import jax

    if jax.default_backend() != "gpu":
        parser.exit(
            2,
            f"bench.gpu: no GPU (jax backend {jax.default_backend()!r}); CPU figures: "
            "bench.train_step\n",
        )
    for case, size, seeds in plan(args.quick):
        command = [
            sys.executable,
            "-m",
            "bench.train_step",
            "--case",
            case,
            "--updates",
            str(args.updates),
            "--seeds",
            str(seeds),
            "--set",
            f"agent.size={size}",
            "--set",
            "agent.compute_dtype=auto",
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(
                json.dumps(
                    {"case": case, "size": size, "seeds": seeds, "error": done.stderr[-2000:]}
                ),
                flush=True,
            )
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["size"] = size
        result["model_flop_utilisation"] = result.pop("fraction_of_matmul_peak")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
