"""The `dreamerbench` command: one subcommand per job, each owned by its package."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from dreamerbench import __version__
from dreamerbench.core.files import StorageError

# subcommand -> module that defines `register(subparsers)`; imported lazily so
# that `dreamerbench suites` does not pay for importing JAX.
SUBCOMMANDS = {
    "train": "dreamerbench.experiments.train_cli",
    "eval": "dreamerbench.agent.eval_cli",
    "export": "dreamerbench.agent.eval_cli",
    "suites": "dreamerbench.suites.cli",
    "table": "dreamerbench.analysis.cli",
    "plot": "dreamerbench.analysis.cli",
    "config": "dreamerbench.agent.config_cli",
    "sweep": "dreamerbench.experiments.sweep_cli",
    "status": "dreamerbench.experiments.sweep_cli",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse with bad flags reported as every bad input is: one line, exit 2
    (argparse's own usage block is left to ``--help``)."""

    def error(self, message: str):
        message = re.sub(r"^argument (\S+): (?=\1=)", "", message)  # typed flags name themselves
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dreamerbench", description="DreamerV3 benchmarks: train, sweep, analyse."
    )
    parser.add_argument("--version", action="version", version=f"dreamerbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in dict.fromkeys(SUBCOMMANDS.values()):
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # train records its command
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Ctrl-C before a command takes SIGINT over (train then stops at a checkpoint), e.g.
        # while it imports: one line, not a traceback, and the shell's 130 (128 + SIGINT).
        print("dreamerbench: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as error:
        # Bad input: one clear line, no traceback.
        print(f"dreamerbench {args.command}: error: {error}", file=sys.stderr)
        return 2
    except StorageError as error:
        # A file or store that cannot be used now (full disk, busy logdir, unreachable
        # MLflow, unreadable checkpoint): one line; nothing written before is lost.
        print(f"dreamerbench {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
