"""``dreamerbench config``: the resolved config of a run, each field with its docstring."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import sys
import typing
from typing import Any


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show the resolved config of a run, each field with its meaning and range",
        description="The config `dreamerbench train` would run with: defaults <- the suite's "
        "agent defaults <- --set, checked as train checks it; each field with its docstring "
        "and, where the value is not the default, the default.",
    )
    parser.add_argument("--suite", required=True, help="suite name (see `dreamerbench suites`)")
    parser.add_argument("--task", required=True, help="task within the suite")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, as for train, e.g. --set run.steps=5000 (repeatable)",
    )
    parser.set_defaults(func=run)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> docstring (the string literal after the field) of a dataclass ``cls``."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    return {
        node.target.id: inspect.cleandoc(after.value.value)
        for node, after in zip(body, body[1:])
        if isinstance(node, ast.AnnAssign)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
    }


def render(config: Any, protocol: dict[str, Any], indent: str = "") -> list[str]:
    """YAML lines of the dataclass ``config``: each field's docstring as ``#`` comments above
    it, ``# default: X`` after a value that differs from the field's default; ``env`` shows
    ``protocol``, the suite's protocol with the run's overrides."""
    lines, docs = [], field_docs(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        # A section without a docstring of its own: its class's.
        doc = docs.get(f.name) or (
            inspect.cleandoc(type(value).__doc__ or "") if dataclasses.is_dataclass(value) else ""
        )
        lines += [f"{indent}# {line}".rstrip() for line in doc.splitlines()]
        if dataclasses.is_dataclass(value):
            lines += [f"{indent}{f.name}:", *render(value, protocol, indent + "  ")]
            continue
        if f.name == "env" and isinstance(value, typing.Mapping):
            lines.append(f"{indent}{f.name}:  # the suite's protocol with the run's overrides")
            lines += [f"{indent}  {k}: {json.dumps(v)}" for k, v in protocol.items()]
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        note = "" if value == default else f"  # default: {json.dumps(_plain(default))}"
        lines.append(f"{indent}{f.name}: {json.dumps(_plain(value))}{note}")
    return lines


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def run(args: argparse.Namespace) -> int:
    """Print the resolved config (stdout) and the trainer's warnings about it (stderr)."""
    from dreamerbench.agent.config import resolve_config
    from dreamerbench.agent.schedule import no_update_warning, schedule_warnings
    from dreamerbench.suites import get_suite

    config = resolve_config(args.suite, args.task, 0, args.overrides)
    protocol = get_suite(config.suite).resolve_protocol(config.env)
    print("\n".join(render(config, protocol)))
    for warning in [no_update_warning(config), *schedule_warnings(config)]:
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    return 0
