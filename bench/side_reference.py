"""Run the reference's own training script (danijar/dreamerv3 e3f0224, `dreamerv3/main.py`).

    PYTHONPATH=<reference checkout> <reference venv>/bin/python bench/side_reference.py \
        [--exact-twohot] -- <the reference's own flags>

Started by `bench.side` for its `reference` and `reference-exact` arms, in the
reference's venv: this file imports nothing of ours. Two changes are made at run
time, before the reference's `main()` parses its flags:

- The reference's bsuite env (``embodied/envs/bsuite.py``) does not run at e3f0224:
  it calls ``bsuite.from_checkpoint_id`` (bsuite 0.3.6, the release on the package
  index, names it ``load_from_id``) and two wrappers that its ``embodied`` lacks,
  ``ForceDtypes`` and ``FlattenTwoDimObs``. Both arms get the alias and the two
  wrappers: ``ForceDtypes`` passes steps through (the reference's ``UnifyDtypes``,
  applied to every env, already makes floats float32 and integers int32) and
  ``FlattenTwoDimObs`` flattens each 2-D observation (Catch's 10x5 board) to a
  vector, row-major, as our bsuite suite does.
- ``--exact-twohot`` (the ``reference-exact`` arm) replaces the reference's
  two-hot mean (`embodied.jax.outs.TwoHot.pred`). The reference sums the mirrored
  halves' products ``(p_lo b_lo)[::-1] + p_hi b_hi`` and reduces that sum; under
  ``jit`` on this CPU, XLA reassociates it into two reductions, so uniform logits
  give -0.166 instead of 0 (issue 20). Here the probabilities of mirrored bins are
  differenced first, ``sum((p_hi - p_lo[::-1]) * b_hi)``: for uniform logits each
  difference is exactly 0 before any reduction, however XLA orders it. The bins
  are exactly mirrored (the reference builds them as ``[half, -half[::-1]]``).
"""

from __future__ import annotations

import sys


def exact_twohot_mean(probs, bins):
    """The two-hot mean ``sum(probs * bins, -1)`` for bins mirrored about the middle.

    probs: [..., K] softmax probabilities; bins: [K] with ``bins[::-1] == -bins`` (for odd K
    the middle bin is 0). Returns [...]. Mirrored bins' probabilities are differenced before
    the reduction, so equal probabilities give exactly 0 in any summation order.
    """
    k = probs.shape[-1]
    half = k // 2
    upper = probs[..., k - half :]
    lower = probs[..., :half][..., ::-1]
    return ((upper - lower) * bins[k - half :]).sum(-1)


def _bsuite_wrappers():
    """The two wrappers the reference's bsuite env expects: (ForceDtypes, FlattenTwoDimObs)."""
    import elements
    import numpy as np
    from embodied.core.wrappers import Wrapper

    class ForceDtypes(Wrapper):
        """Steps unchanged (the reference's UnifyDtypes casts the dtypes later)."""

    class FlattenTwoDimObs(Wrapper):
        """Every 2-D observation [H, W] becomes a vector [H * W] (row-major)."""

        def __init__(self, env):
            super().__init__(env)
            self._keys = [k for k, v in env.obs_space.items() if len(v.shape) == 2]

        @property
        def obs_space(self):
            spaces = dict(self.env.obs_space)
            for key in self._keys:
                space = spaces[key]
                size = int(np.prod(space.shape))
                low = np.broadcast_to(space.low, space.shape).reshape(size)
                high = np.broadcast_to(space.high, space.shape).reshape(size)
                spaces[key] = elements.Space(space.dtype, (size,), low, high)
            return spaces

        def step(self, action):
            obs = self.env.step(action)
            return {k: v.reshape(-1) if k in self._keys else v for k, v in obs.items()}

    return ForceDtypes, FlattenTwoDimObs


def _patch(exact: bool) -> None:
    import bsuite
    from embodied.core import wrappers

    if not hasattr(bsuite, "from_checkpoint_id"):
        bsuite.from_checkpoint_id = bsuite.load_from_id
    wrappers.ForceDtypes, wrappers.FlattenTwoDimObs = _bsuite_wrappers()
    if exact:
        from embodied.jax import outs

        def pred(self):
            return self.unsquash(exact_twohot_mean(self.probs, self.bins))

        outs.TwoHot.pred = pred


def main(argv: list[str]) -> None:
    exact = "--exact-twohot" in argv[: argv.index("--")] if "--" in argv else False
    flags = argv[argv.index("--") + 1 :] if "--" in argv else argv
    _patch(exact)
    from dreamerv3.main import main as reference_main

    reference_main(flags)


if __name__ == "__main__":
    main(sys.argv[1:])
