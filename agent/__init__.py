"""dreamerbench: agent."""


def load_policy(path):
    """A trained policy exported by ``dreamerbench export``
    (see :func:`dreamerbench.agent.policy.load_policy`)."""
    from dreamerbench.agent.policy import load_policy as load  # JAX loads only when a policy does

    return load(path)
