"""Where each parameter of the reference (danijar/dreamerv3 e3f0224) lives in our `TrainState`.

The reference keeps all state in one flat dict named by module path (e.g.
``dyn/dynin0/kernel``); ours keeps `TrainState.params` = {'world_model',
'actor', 'critic'} flax variable trees plus `TrainState.slow_critic`. This
module maps names both ways; it needs only NumPy, so CI can use it without the
reference installed (the names come from the recorded npz files).

Every reference leaf is exactly one of our leaves with the same shape and memory
layout. Layouts that agree although the code is organised differently:

- ``dyn/obs0`` is a Linear on concat(deter, tokens): kernel rows [0, deter) act on
  deter and the rest on the tokens; our `TwoInputLinear` ``post_in`` has the same
  rows (a = deter first, b = tokens).
- ``dyn/dynhid0`` [g, deter/g + 3 hidden, deter/g]: each block's input rows are
  (its deter slice, dynin0, dynin1, dynin2 outputs); our `SharedBlockLinear`
  ``dyn_hidden`` orders its rows the same (own slice, then the shared inputs).
- ``dyn/dyngru`` [g, deter/g, 3 deter/g]: each block's outputs are (reset,
  candidate, update); our ``dyn_gates`` splits each block's outputs the same way.
- ``dec/sp0`` is a BlockLinear whose output (g h w c) becomes h w (g c); our
  ``decoder/BlockLinear_0`` output is reshaped [g, h, w, c/g] and g moved next to c.
- ``dec/vec/<key>/pred``, the output layer of each vector key, is our
  ``decoder/Linear_<i>`` with i the key's place in sorted order.
- ``dec/sp2`` is a Linear with units (h, w, c): its kernel is stored flat
  [in, h * w * c] and reshaped row-major, as our ``decoder/Linear_<k>`` (k = the
  number of vector keys, which come first).
- The decoder's conv stages run from the coarsest grid: reference conv{n-2} ..
  conv0, then imgout, are our Conv_0 .. Conv_{n-1} (n = len(cnn_mults)), and
  ``dec/spnorm``, conv{n-2}norm .. conv0norm are our RMSNorm_0 .. RMSNorm_{n-1}.
- Our `Dense` (Linear + RMSNorm + SiLU) is the reference's Linear, Norm pair:
  ``mlp{i}``/``mlp{i}norm`` or ``mlp/linear{i}``/``mlp/norm{i}`` -> Dense_i/Linear_0,
  Dense_i/RMSNorm_0.

The optimiser state (chain: AGC, RMS, momentum, learning-rate schedule, in the
same order on both sides) is named ``opt/state/<i>/...``: see `OPT_STATE`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

PARAM_MODULES = ("dyn", "enc", "dec", "rew", "con", "pol", "val", "slowval")
"""Top-level reference modules that hold parameters (`slowval` is the slow critic)."""

OPT_STATE = {
    "rms_count": "opt/state/1/0",
    "rms": "opt/state/1/1/",  # + parameter name: EMA of squared gradients
    "momentum_count": "opt/state/2/0",
    "momentum": "opt/state/2/1/",  # + parameter name: EMA of RMS-scaled updates
    "schedule_count": "opt/state/3/count",
}
"""Reference names of the optimiser state (our `optax.chain` state tuple entries 1, 2, 3)."""

RETURN_NORM = {"low": "retnorm/lo/value", "high": "retnorm/hi/value"}
"""Reference names of the percentile return normaliser's EMAs (our `ReturnNorm` fields)."""


@dataclass(frozen=True)
class Layout:
    """What the names depend on: the vector observation keys (sorted, as our encoder and
    decoder order them) and the number of CNN stages (0 without images)."""

    vector_keys: tuple[str, ...] = ()
    cnn_stages: int = 0


@dataclass(frozen=True)
class Target:
    """One of our leaves: `tree` is 'params' or 'slow_critic', `path` the keys inside it."""

    tree: str
    path: tuple[str, ...]


def is_parameter(name: str) -> bool:
    return name.split("/", 1)[0] in PARAM_MODULES


def _dense(prefix: tuple[str, ...], index: str, norm: bool, leaf: str) -> tuple[str, ...]:
    return (*prefix, f"Dense_{index}", "RMSNorm_0" if norm else "Linear_0", leaf)


def _rules(layout: Layout) -> list[tuple[str, Callable[..., tuple]]]:
    """(regex, fn(match) -> (tree, path)) for every reference parameter."""
    n = layout.cnn_stages
    wm = ("world_model", "params")
    actor = ("actor", "params")
    dyn_inputs = {"0": "dyn_in_deter", "1": "dyn_in_stoch", "2": "dyn_in_action"}
    image_linear = f"Linear_{len(layout.vector_keys)}"

    def vector_head(m):
        if m[1] not in layout.vector_keys:
            raise KeyError(
                f"reference decoder head for vector key {m[1]!r}; layout keys: {layout.vector_keys}"
            )
        return "params", (*wm, "decoder", f"Linear_{layout.vector_keys.index(m[1])}", m[2])

    return [
        (
            r"dyn/dynin(\d)(norm)?/(\w+)",
            lambda m: (
                "params",
                (*wm, dyn_inputs[m[1]], "RMSNorm_0" if m[2] else "Linear_0", m[3]),
            ),
        ),
        (r"dyn/dynhid0/(\w+)", lambda m: ("params", (*wm, "dyn_hidden", m[1]))),
        (r"dyn/dynhid0norm/(\w+)", lambda m: ("params", (*wm, "dyn_hidden_norm", m[1]))),
        (r"dyn/dyngru/(\w+)", lambda m: ("params", (*wm, "dyn_gates", m[1]))),
        (
            r"dyn/prior(\d)(norm)?/(\w+)",
            lambda m: ("params", _dense((*wm, "prior_mlp"), m[1], bool(m[2]), m[3])),
        ),
        (r"dyn/priorlogit/(\w+)", lambda m: ("params", (*wm, "prior_out", m[1]))),
        (r"dyn/obs0/(\w+)", lambda m: ("params", (*wm, "post_in", m[1]))),
        (r"dyn/obs0norm/(\w+)", lambda m: ("params", (*wm, "post_norm", m[1]))),
        (r"dyn/obslogit/(\w+)", lambda m: ("params", (*wm, "post_out", m[1]))),
        (
            r"enc/mlp(\d)(norm)?/(\w+)",
            lambda m: ("params", _dense((*wm, "encoder", "MLP_0"), m[1], bool(m[2]), m[3])),
        ),
        (r"enc/cnn(\d)/(\w+)", lambda m: ("params", (*wm, "encoder", f"Conv_{m[1]}", m[2]))),
        (r"enc/cnn(\d)norm/(\w+)", lambda m: ("params", (*wm, "encoder", f"RMSNorm_{m[1]}", m[2]))),
        (
            r"dec/mlp/(linear|norm)(\d)/(\w+)",
            lambda m: ("params", _dense((*wm, "decoder", "MLP_0"), m[2], m[1] == "norm", m[3])),
        ),
        (r"dec/vec/(.+)/pred/(\w+)", vector_head),
        (r"dec/sp0/(\w+)", lambda m: ("params", (*wm, "decoder", "BlockLinear_0", m[1]))),
        (
            r"dec/sp1(norm)?/(\w+)",
            lambda m: ("params", _dense((*wm, "decoder"), "0", bool(m[1]), m[2])),
        ),
        (r"dec/sp2/(\w+)", lambda m: ("params", (*wm, "decoder", image_linear, m[1]))),
        (r"dec/spnorm/(\w+)", lambda m: ("params", (*wm, "decoder", "RMSNorm_0", m[1]))),
        (
            r"dec/conv(\d)/(\w+)",
            lambda m: ("params", (*wm, "decoder", f"Conv_{n - 2 - int(m[1])}", m[2])),
        ),
        (
            r"dec/conv(\d)norm/(\w+)",
            lambda m: ("params", (*wm, "decoder", f"RMSNorm_{n - 1 - int(m[1])}", m[2])),
        ),
        (r"dec/imgout/(\w+)", lambda m: ("params", (*wm, "decoder", f"Conv_{n - 1}", m[1]))),
        (
            r"rew/mlp/(linear|norm)(\d)/(\w+)",
            lambda m: ("params", _dense((*wm, "reward_mlp"), m[2], m[1] == "norm", m[3])),
        ),
        (r"rew/head/logits/(\w+)", lambda m: ("params", (*wm, "reward_out", m[1]))),
        (
            r"con/mlp/(linear|norm)(\d)/(\w+)",
            lambda m: ("params", _dense((*wm, "cont_mlp"), m[2], m[1] == "norm", m[3])),
        ),
        (r"con/head/logit/(\w+)", lambda m: ("params", (*wm, "cont_out", m[1]))),
        (
            r"pol/mlp/(linear|norm)(\d)/(\w+)",
            lambda m: ("params", _dense((*actor, "MLP_0"), m[2], m[1] == "norm", m[3])),
        ),
        (
            r"pol/head/[^/]+/(mean|stddev|logits)/(\w+)",
            lambda m: (
                "params",
                (*actor, {"mean": "mean", "stddev": "std", "logits": "Linear_0"}[m[1]], m[2]),
            ),
        ),
        (
            r"(val|slowval)/mlp/(linear|norm)(\d)/(\w+)",
            lambda m: _critic(m[1], _dense(("params", "MLP_0"), m[3], m[2] == "norm", m[4])),
        ),
        (r"(val|slowval)/head/logits/(\w+)", lambda m: _critic(m[1], ("params", "Linear_0", m[2]))),
    ]


def _critic(module: str, path: tuple[str, ...]):
    return ("params", ("critic", *path)) if module == "val" else ("slow_critic", path)


def target(name: str, layout: Layout) -> Target:
    """Our leaf for reference parameter `name`; KeyError if no rule maps it."""
    for pattern, fn in _rules(layout):
        match = re.fullmatch(pattern, name)
        if match:
            return Target(*fn(match))
    raise KeyError(f"no mapping for reference parameter {name!r}")


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    if path[-1] in tree:
        raise ValueError(f"two reference parameters map to {'/'.join(path)}")
    tree[path[-1]] = value


def get_leaf(tree: Mapping, path: tuple[str, ...]):
    """tree[path[0]][path[1]]..."""
    for key in path:
        tree = tree[key]
    return tree


def to_ours(flat: Mapping[str, np.ndarray], layout: Layout, prefix: str = "") -> dict[str, dict]:
    """Reference parameters {prefix + name: array} -> {'params': our params tree,
    'slow_critic': ...}.

    `prefix` selects e.g. the optimiser's moments (``opt/state/1/1/``); other names are skipped.
    """
    trees: dict[str, dict] = {"params": {}, "slow_critic": {}}
    for full, value in flat.items():
        if full.startswith(prefix) and is_parameter(full[len(prefix) :]):
            where = target(full[len(prefix) :], layout)
            _set(trees[where.tree], where.path, np.asarray(value))
    return trees


def to_reference(
    trees: Mapping[str, Mapping], names: Iterable[str], layout: Layout
) -> dict[str, np.ndarray]:
    """Our trees {'params': ..., 'slow_critic': ...} (either may be missing) -> {reference
    name: array} for the reference parameter `names` whose tree is present."""
    flat = {}
    for name in names:
        if is_parameter(name):
            where = target(name, layout)
            if where.tree in trees:
                flat[name] = np.asarray(get_leaf(trees[where.tree], where.path))
    return flat


def leaf_paths(tree: Mapping, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """All key paths to the leaves of a nested mapping."""
    paths = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            paths += leaf_paths(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths
