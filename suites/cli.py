"""`dreamerbench suites [NAME]`: list the suites, or show one suite's protocol."""

from __future__ import annotations

import argparse
import json

from dreamerbench.suites import SUITES, get_suite
from dreamerbench.suites.base import Suite


def register(subparsers) -> None:
    """Add the ``suites`` subcommand to the ``dreamerbench`` parser."""
    parser = subparsers.add_parser(
        "suites",
        help="list benchmark suites, or show one suite's tasks and protocol",
        description="Without NAME: one line per suite. With NAME: its tasks, protocol, "
        "budget, agent defaults and notes.",
    )
    parser.add_argument("name", nargs="?", help=f"suite name ({', '.join(SUITES)})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the listing or one suite's details; unknown names raise ValueError."""
    print(describe(get_suite(args.name)) if args.name else listing())
    return 0


def listing() -> str:
    """One line per suite: name, task count, default budget."""
    width = max(len(name) for name in SUITES)
    lines = [
        f"{suite.name:<{width}}  "
        + ("any tasks" if suite.open_tasks else f"{len(suite.tasks):>2} tasks")
        + "  "
        f"{suite.budget_steps:>11,} steps ({suite.budget_frames:,} frames)"
        + ("  (cannot be trained here; see notes)" if suite.unavailable else "")
        + ("  (see notes)" if suite.notes and not suite.unavailable else "")
        for suite in SUITES.values()
    ]
    return "\n".join(lines + ["", "dreamerbench suites NAME  shows tasks and protocol."])


def describe(suite: Suite) -> str:
    """Tasks, protocol, budget, agent defaults, score references and notes of a suite."""
    published = (
        f"{', '.join(suite.published.files)} ({suite.published.where}); tasks named like "
        f"{suite.published_task(suite.tasks[0])!r}"
        if suite.published
        else "none"
    )
    sections = [
        f"{suite.name}: {suite.description}",
        (
            f"tasks: {suite.description}"
            + (f"; e.g. {', '.join(suite.tasks)}" if suite.tasks else "")
            if suite.open_tasks
            else f"tasks ({len(suite.tasks)}): {', '.join(suite.tasks)}"
        ),
        "protocol (override with --set env.FIELD=VALUE): "
        f"{json.dumps(dict(suite.default_protocol))}",
        f"budget: {suite.budget_steps:,} agent steps = {suite.budget_frames:,} frames "
        f"(action_repeat {suite.action_repeat}); final score: {suite.run_score} of the episodes "
        f"ending in the last {suite.final_window_frames:,} frames",
        f"agent defaults: {json.dumps(dict(suite.agent_defaults))}",
        f"published scores: {published}",
    ]
    if suite.notes:
        sections.append(f"notes: {suite.notes}")
    return "\n".join(sections)
