"""The one typed reader: every value a person gives is read here.

Configs (``--set``, suite presets, a job's config), sweep specs, Slurm
profiles, suite protocols and typed CLI flags all read their values with
:func:`read` against a type hint, so a rule (type, range, finiteness, allowed
values) is written once, next to its field, and every entry point enforces it
the same way. A hint is a plain type (``bool``, ``int``, ``float``, ``str``,
``None``), ``Literal[...]`` (the allowed values), ``tuple[X, ...]``, a union
``X | Y``, a ``Mapping`` (free-form), a dataclass (read field by field), or
any of these in ``Annotated[X, rule, ...]`` with a :class:`Range`,
:class:`Length` or :class:`Match` rule.

- Numbers are finite: ``nan`` and ``inf`` are refused for every float, and
  every int fits in 64 bits. An int field takes an integral float (YAML reads
  ``1e6`` as a float); a float field takes an int. Nothing else is converted:
  a quoted ``"64"`` is a string, and ``true`` is not a number.
- Text is YAML 1.2 (ruamel.yaml), for spec and profile files and for the
  values of ``--set`` and of typed flags alike: ``010`` is ten, ``1:30`` and
  ``yes`` are strings, ``.inf`` is a float that no field allows. Aliases are
  refused (a few lines of aliases expand to billions of nodes), and so are tags
  (``!!set``, ``!custom``, on scalars, lists and mappings alike), nesting deeper
  than :data:`MAX_DEPTH`, and a key given twice, in one mapping or as ``a.b``
  next to ``a: {b: ...}``.
- Every error is a :class:`ReadError` whose message is one line:
  ``FIELD=VALUE is not allowed; allowed: ALLOWED``, prefixed with
  ``FILE:LINE: `` where the value came from a file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingStartEvent,
    NodeEvent,
)

INT64 = (-(2**63), 2**63 - 1)
"""Every int read lies in this range (numpy's int64), whatever its own range says."""


class ReadError(ValueError):
    """A value or key that its schema does not allow; ``str()`` is the one-line message.

    ``field`` is the dotted name of the offending field (``agent.opt.lr``), or
    ``""``; callers that know where the field was written prefix the message
    with ``FILE:LINE: `` (see :meth:`Source.where`).
    """

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


# ---------------------------------------------------------------- rules


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class Range:
    """Bounds of a number (any may be None); ``note`` says why, after the bounds.

    ``Range(ge=0, lt=1).text == "in [0, 1)"``, ``Range(gt=0).text == "> 0"``.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    note: str = ""

    def allows(self, x: float) -> bool:
        return not (
            (self.ge is not None and x < self.ge)
            or (self.gt is not None and x <= self.gt)
            or (self.le is not None and x > self.le)
            or (self.lt is not None and x >= self.lt)
        )

    @property
    def text(self) -> str:
        low = (
            f"[{_num(self.ge)}"
            if self.ge is not None
            else f"({_num(self.gt)}"
            if self.gt is not None
            else None
        )
        high = (
            f"{_num(self.le)}]"
            if self.le is not None
            else f"{_num(self.lt)})"
            if self.lt is not None
            else None
        )
        if low and high:
            text = f"in {low}, {high}"
        elif low:
            text = (">= " if low[0] == "[" else "> ") + low[1:]
        elif high:
            text = ("<= " if high[-1] == "]" else "< ") + high[:-1]
        else:
            text = ""
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Length:
    """Bounds on the number of items of a list."""

    min: int = 0
    max: int | None = None

    def allows(self, items: tuple) -> bool:
        return self.min <= len(items) and (self.max is None or len(items) <= self.max)

    @property
    def text(self) -> str:
        if self.max is None:
            return f"at least {self.min} item{'s' * (self.min != 1)}"
        return f"{self.min} to {self.max} items"


@dataclass(frozen=True)
class Match:
    """A string that fully matches ``pattern``; ``text`` says so in words."""

    pattern: str
    text: str

    def allows(self, value: str) -> bool:
        return re.fullmatch(self.pattern, value) is not None


Positive = Range(gt=0)
NonNegative = Range(ge=0)
AtLeastOne = Range(ge=1)
Fraction = Range(ge=0, lt=1)
"""A share in [0, 1), e.g. a uniform mixture or a decay."""
Probability = Range(ge=0, le=1)

PositiveInt = Annotated[int, AtLeastOne]
NonNegativeInt = Annotated[int, NonNegative]
PositiveFloat = Annotated[float, Positive]
NonNegativeFloat = Annotated[float, NonNegative]
OneLine = Annotated[str, Match(r"[^\n]*", "a string of one line")]


def _split(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[X, r1, r2]`` -> ``(X, (r1, r2))``; anything else -> ``(hint, ())``."""
    if typing.get_origin(hint) is Annotated:
        base, *rules = typing.get_args(hint)
        return base, tuple(rules)
    return hint, ()


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def describe(hint: Any) -> str:
    """What a hint allows, in words: ``describe(PositiveInt) == "an integer >= 1"``."""
    base, rules = _split(hint)
    origin = typing.get_origin(base)
    rule_text = " ".join(rule.text for rule in rules if not isinstance(rule, Match))
    matches = [rule.text for rule in rules if isinstance(rule, Match)]
    if origin is Literal:
        return ", ".join(str(v) for v in typing.get_args(base))
    if _is_union(base):
        return ", or ".join(describe(arg) for arg in typing.get_args(base))
    if base is type(None):
        return "null"
    if base is bool:
        return "true or false"
    if base is int:
        return f"an integer {rule_text}".strip()
    if base is float:
        return f"a finite number {rule_text}".strip()
    if base is str:
        return matches[0] if matches else "a string"
    if origin is tuple:
        each = describe(typing.get_args(base)[0])
        return f"a list of {rule_text}, each {each}" if rule_text else f"a list, each {each}"
    if _is_mapping_hint(base):
        return "a mapping"
    if dataclasses.is_dataclass(base):
        return f"a mapping of {base.__name__} fields: {', '.join(_hints(base))}"
    return getattr(base, "__name__", str(base))


SHOW_CHARS = 400
"""Longest value an error message shows whole: room for any real path, cut for pasted blobs."""


def show(value: Any) -> str:
    """A value as an error message shows it (``repr``, cut at :data:`SHOW_CHARS` characters)."""
    text = repr(value)
    return text if len(text) <= SHOW_CHARS else text[: SHOW_CHARS - 3] + "..."


def refuse(name: str, value: Any, allowed: str) -> ReadError:
    """The one error format: ``NAME=VALUE is not allowed; allowed: ALLOWED``."""
    return ReadError(f"{name}={show(value)} is not allowed; allowed: {allowed}", name)


# ---------------------------------------------------------------- reading values


def read(value: Any, hint: Any, name: str) -> Any:
    """``value`` read as ``hint`` (ints from integral floats, floats from ints,
    lists as tuples), or ReadError naming ``name``, the value and what is allowed."""
    result = _read(value, hint)
    if result is _REFUSED:
        raise refuse(name, value, describe(hint))
    if isinstance(result, ReadError):
        raise result
    return result


_REFUSED = object()


def _read(value: Any, hint: Any) -> Any:
    base, rules = _split(hint)
    origin = typing.get_origin(base)
    if origin is Literal:
        return (
            value
            if any(value == v and type(value) is type(v) for v in typing.get_args(base))
            else _REFUSED
        )
    if _is_union(base):
        for option in typing.get_args(base):
            result = _read(value, option)
            if result is not _REFUSED:
                return result
        return _REFUSED
    if base is type(None):
        return None if value is None else _REFUSED
    if base is bool:
        result = value if isinstance(value, bool) else _REFUSED
    elif base is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        ok = (
            isinstance(value, int) and not isinstance(value, bool) and INT64[0] <= value <= INT64[1]
        )
        result = value if ok else _REFUSED
    elif base is float:
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
        result = float(value) if ok else _REFUSED
    elif base is str:
        result = value if isinstance(value, str) else _REFUSED
    elif origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _REFUSED
        (item,) = [a for a in typing.get_args(base) if a is not Ellipsis]
        items = tuple(_read(v, item) for v in value)
        result = _REFUSED if any(v is _REFUSED for v in items) else items
    elif _is_mapping_hint(base):
        result = dict(value) if isinstance(value, Mapping) else _REFUSED
    else:
        raise TypeError(f"the reader does not know the type hint {hint!r}")
    if result is _REFUSED or not all(rule.allows(result) for rule in rules):
        return _REFUSED
    return result


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Field name -> type hint (with its rules) of a dataclass."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def field_hint(cls: type, dotted: str) -> Any:
    """The hint of a dotted field of a dataclass tree, e.g. ``field_hint(Config, "run.steps")``."""
    name, _, rest = dotted.partition(".")
    hint = _hints(cls)[name]
    return field_hint(_split(hint)[0], rest) if rest else hint


def _is_mapping_hint(hint: Any) -> bool:
    base = _split(hint)[0]
    return base in (Mapping, dict) or typing.get_origin(base) in (abc.Mapping, dict)


def override(node: Any, key: str, value: Any, prefix: str = "") -> Any:
    """A copy of the dataclass ``node`` with the dotted ``key`` read from ``value``.

    A key below a ``Mapping`` field (``env.action_repeat``) is stored as given
    (its owner reads it); a mapping given for a nested dataclass sets its fields.
    """
    hints = _hints(type(node))
    name, _, rest = key.partition(".")
    full = f"{prefix}{name}"
    if name not in hints:
        at = f" at {prefix[:-1]}" if prefix else ""
        raise ReadError(
            f"unknown field {prefix + key!r}; allowed fields{at}: {', '.join(hints)}", prefix + key
        )
    hint, current = hints[name], getattr(node, name)
    if _is_mapping_hint(hint):
        merged = dict(current)
        if rest:
            merged[rest] = value
        elif isinstance(value, Mapping):
            merged.update(value)
        else:
            raise refuse(full, value, "a mapping")
        return dataclasses.replace(node, **{name: merged})
    if dataclasses.is_dataclass(current):
        if rest:
            return dataclasses.replace(node, **{name: override(current, rest, value, full + ".")})
        if not isinstance(value, Mapping):
            raise refuse(full, value, describe(type(current)))
        for sub, sub_value in value.items():
            current = override(current, str(sub), sub_value, full + ".")
        return dataclasses.replace(node, **{name: current})
    if rest:
        raise ReadError(f"unknown field {prefix + key!r}: {full} has no sub-fields", prefix + key)
    return dataclasses.replace(node, **{name: read(value, hint, full)})


def read_dataclass(cls: type, data: Mapping[str, Any], prefix: str = "", **fixed: Any) -> Any:
    """``cls(**fields)`` with every key of ``data`` read against its field (``fixed``
    values are set as given); unknown keys are refused, listing the fields."""
    node = cls(**fixed)
    for key, value in data.items():
        if not isinstance(key, str) or "." in key or key in fixed:
            at = f" at {prefix[:-1]}" if prefix else ""
            names = ", ".join(k for k in _hints(cls) if k not in fixed)
            raise ReadError(
                f"unknown field {prefix}{key!r}; allowed fields{at}: {names}", f"{prefix}{key}"
            )
        node = override(node, key, value, prefix)
    return node


def check_all(node: Any, prefix: str = "") -> None:
    """Read every field of a dataclass tree again (e.g. one built in Python): ReadError if any is
    not allowed."""
    for name, hint in _hints(type(node)).items():
        value = getattr(node, name)
        if dataclasses.is_dataclass(value):
            check_all(value, f"{prefix}{name}.")
        else:
            read(value, hint, f"{prefix}{name}")


def flag(hint: Any, name: str) -> Callable[[str], Any]:
    """An argparse ``type=``: the flag's text read as YAML 1.2 (as ``--set`` reads it), then as
    ``hint``."""
    import argparse

    def parse(text: str) -> Any:
        try:
            return read(parse_value(text), hint, name)
        except ReadError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = describe(hint)  # argparse names the type in its messages
    return parse


# ---------------------------------------------------------------- YAML text


def _yaml() -> YAML:
    # Round-trip mode keeps each key's line; pure Python for the same rules everywhere.
    return YAML(typ="rt", pure=True)


def _plain(node: Any, where: str, lines: dict[str, int], prefix: str) -> Any:
    """ruamel's round-trip objects as plain dicts, lists and scalars; records key lines."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            if not isinstance(key, (str, int, float, bool)):
                raise ReadError(
                    f"{where}:{node.lc.line + 1}: a key must be a plain scalar, not {show(key)}"
                )
            name = f"{prefix}.{key}" if prefix else str(key)
            lines[name] = node.lc.key(key)[0] + 1
            out[_plain(key, where, lines, "")] = _plain(value, where, lines, name)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for index, value in enumerate(node):
            lines[f"{prefix}[{index}]"] = node.lc.item(index)[0] + 1
            out.append(_plain(value, where, lines, f"{prefix}[{index}]"))
        return out
    if node is None or isinstance(node, bool):
        return node
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    line = f":{lines[prefix]}" if prefix in lines else ""
    raise ReadError(
        f"{where}{line}: {prefix or 'the document'} holds a YAML value with a tag "
        f"({type(node).__name__}); allowed: plain mappings, lists and scalars",
        prefix,
    )


MAX_DEPTH = 32
"""Deepest nesting of lists and mappings a YAML text may have (configs and specs need 4)."""


def _check_events(yaml: YAML, text: str, where: str) -> None:
    """ReadError for the first alias, tag or nesting deeper than :data:`MAX_DEPTH` in `text`,
    naming its line and field; from the parser's events, in time linear in the text (no alias
    is expanded, no node built)."""
    # One frame per open collection: [is a mapping, its current key or index, a key is next].
    stack: list[list[Any]] = []
    for event in yaml.parse(text):
        if isinstance(event, CollectionEndEvent):
            stack.pop()
            _value_done(stack)
            continue
        if not isinstance(event, NodeEvent):
            continue
        line = f"{where}:{event.start_mark.line + 1}"
        field = _event_path(stack)
        named = field or "the document"
        if isinstance(event, AliasEvent):
            raise ReadError(
                f"{line}: *{event.anchor} is a YAML alias; allowed: plain values (aliases are "
                "refused: a few lines of them expand to billions of values)",
                field,
            )
        if event.tag is not None:
            tag = event.tag.replace("tag:yaml.org,2002:", "!!")
            raise ReadError(
                f"{line}: {named}: the YAML tag {tag} is not allowed; allowed: plain values "
                "(plain mappings, lists and scalars; tags are refused)",
                field,
            )
        if isinstance(event, CollectionStartEvent):
            stack.append([isinstance(event, MappingStartEvent), 0, True])
            if len(stack) > MAX_DEPTH:
                raise ReadError(
                    f"{line}: {named}: lists and mappings nested {len(stack)} deep are not "
                    f"allowed; allowed: at most {MAX_DEPTH} levels",
                    field,
                )
        elif stack and stack[-1][0] and stack[-1][2]:  # a key: its value comes next
            stack[-1][1:] = [event.value, False]
        else:
            _value_done(stack)


def _value_done(stack: list[list[Any]]) -> None:
    """The innermost open collection got a whole value: a key comes next, or the next index."""
    if stack:
        if stack[-1][0]:
            stack[-1][2] = True
        else:
            stack[-1][1] += 1


def _event_path(stack: list[list[Any]]) -> str:
    """The field path (``overrides.env[2]``) of the node the parser is at ('' at the top)."""
    path = ""
    for is_map, key, key_next in stack:
        if is_map and key_next:
            break  # the node is a key: name its mapping
        path += (f".{key}" if path else str(key)) if is_map else f"[{key}]"
    return path


def load_yaml(text: str, where: str) -> tuple[Any, dict[str, int]]:
    """Parse one YAML 1.2 document into plain data and the line of every key.

    ``lines`` maps a field path (``overrides.agent.size``, ``tasks[1]``) to its
    1-based line. ReadError (``WHERE:LINE: ...``) for bad YAML, an alias, a tag,
    nesting deeper than :data:`MAX_DEPTH`, or a key given twice in one mapping.
    """
    yaml = _yaml()
    try:
        _check_events(yaml, text, where)
        data = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark else ""
        duplicate = re.match(r'found duplicate key "(.*)" with value', error.problem or "")
        if duplicate:
            raise ReadError(
                f"{where}{line}: {duplicate.group(1)} is given twice", duplicate.group(1)
            ) from None
        problem = error.problem or error.context or "invalid YAML"
        raise ReadError(f"{where}{line}: bad YAML: {problem}") from None
    except YAMLError as error:
        raise ReadError(f"{where}: bad YAML: {str(error).splitlines()[0]}") from None
    lines: dict[str, int] = {}
    return _plain(data, where, lines, ""), lines


def parse_value(text: str) -> Any:
    """One ``--set`` or flag value: YAML 1.2 as in spec files; text that is not YAML stays text."""
    if not text.strip():
        return ""
    try:
        return load_yaml(text, "<value>")[0]
    except ReadError:
        return text


def flatten(
    tree: Mapping[str, Any], prefix: str = "", into: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{'a': {'b': 1}, 'c.d': 2}`` -> ``{'a.b': 1, 'c.d': 2}``; ReadError if two
    spellings name one key (``a.b`` next to ``a: {b: ...}``)."""
    flat = {} if into is None else into
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flatten(value, name + ".", flat)
        elif name in flat:
            raise ReadError(f"{name} is given twice (once nested, once as a dotted key)", name)
        else:
            flat[name] = value
    return flat


@dataclass(frozen=True)
class Source:
    """Where values came from: a file and the line of every field path (from :func:`load_yaml`)."""

    path: str
    lines: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def where(self, field_path: str) -> str:
        """``FILE:LINE`` of a field (or of the closest parent that has a line), or ``FILE``."""
        path = field_path
        while path:
            if path in self.lines:
                return f"{self.path}:{self.lines[path]}"
            path = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return self.path
