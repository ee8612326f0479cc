"""Integrated Policy Gradient (IPG): find and steer the components of a reasoning model that
drive an outcome of its chain of thought. See docs/method.md for the equations.

The public API (ipg.api; imported on first use, so `import ipg` stays cheap):
`ipg.sample`, `ipg.attribute`, `ipg.select_units`, `ipg.steer`."""

__version__ = "0.1.0"
__all__ = ["sample", "attribute", "select_units", "steer", "__version__"]
_API = {"sample", "attribute", "select_units", "steer"}


def __getattr__(name: str):
    if name in _API:
        from ipg import api

        return getattr(api, name)
    raise AttributeError(f"module 'ipg' has no attribute {name!r}")
