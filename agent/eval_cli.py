"""`dreamerbench eval LOGDIR` and `dreamerbench export LOGDIR OUT`: a trained policy for inference
only.

``eval`` loads the newest complete checkpoint's parameters (no replay, no optimizer
step), plays episodes on evaluation envs exactly as the trainer's ``run.eval_every``
does (``agent/evaluation.py``: same seeds, same keys, so the same scores), prints
them and stores them in ``LOGDIR/evaluations/`` (not in the run's training records).
``export`` writes the world model and actor as plain arrays (``agent/policy.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dreamerbench.agent.config import EvalEpisodes, hint
from dreamerbench.core.files import atomic_write_text
from dreamerbench.core.reader import flag


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a run's newest checkpoint",
        description="Play evaluation episodes with the newest complete checkpoint of LOGDIR "
        "(inference only); print the scores and store them in LOGDIR/evaluations/.",
    )
    parser.add_argument("logdir", metavar="LOGDIR", help="run directory of `dreamerbench train`")
    parser.add_argument(
        "--episodes",
        type=flag(EvalEpisodes, "--episodes"),
        help="episodes to play (default: the run's run.eval_episodes)",
    )
    parser.add_argument(
        "--mode",
        type=flag(hint("run.eval_mode"), "--mode"),
        help="greedy (the policy's mode) or sample (default: the run's run.eval_mode)",
    )
    parser.add_argument(
        "--video",
        action="store_true",
        help="also write the first episode as a GIF (tasks without images render their camera)",
    )
    parser.set_defaults(func=run_eval)

    export = subparsers.add_parser(
        "export",
        help="export a run's policy as plain arrays",
        description="Write the world model and actor of LOGDIR's newest complete checkpoint to OUT "
        "(.npz of plain arrays plus meta.json); load it with "
        "`dreamerbench.agent.load_policy(OUT)`.",
    )
    export.add_argument("logdir", metavar="LOGDIR", help="run directory of `dreamerbench train`")
    export.add_argument("out", metavar="OUT", help="file to write, e.g. policy.npz")
    export.set_defaults(func=run_export)


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate the newest checkpoint; one JSON line on stdout, the same in LOGDIR/evaluations/."""
    from dreamerbench.agent.evaluation import evaluate
    from dreamerbench.agent.learner import PackedDreamer
    from dreamerbench.agent.media import write_video
    from dreamerbench.agent.policy import env_spaces, newest_state
    from dreamerbench.suites import get_suite

    config, ckpt, state, step = newest_state(args.logdir)
    episodes = args.episodes or config.run.eval_episodes
    mode = args.mode or config.run.eval_mode
    obs_space, act_space = env_spaces(config)
    agent = PackedDreamer(config, obs_space, act_space, [config.seed])
    agent.set_state([state])
    suite = get_suite(config.suite)
    records, frames = evaluate(
        agent,
        suite,
        config.task,
        [config.seed],
        suite.resolve_protocol(config.env),
        episodes,
        mode == "greedy",
        video=args.video,
        render=True,
    )
    scores = [record["score"] for record in records[0]]
    result = {
        "logdir": str(args.logdir),
        "checkpoint": ckpt.path.name,
        "step": step,
        "mode": mode,
        "episodes": records[0],
        "mean_score": sum(scores) / len(scores),
    }
    out = Path(args.logdir).expanduser() / "evaluations" / f"step-{step:012d}-{mode}-{episodes}ep"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.video and frames[0] is not None:
        result["video"] = str(write_video(out.with_suffix(".gif"), frames[0]))
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export the newest checkpoint's policy; prints what was written."""
    from dreamerbench.agent.policy import export

    meta = export(args.logdir, args.out)
    print(
        json.dumps({"out": str(args.out), "step": meta["step"], "checkpoint": meta["checkpoint"]})
    )
    return 0
