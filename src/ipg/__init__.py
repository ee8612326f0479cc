"""Integrated Policy Gradient (IPG): find and steer the components of a reasoning model that
drive an outcome of its chain of thought. See shared IPG_METHOD.md for the equations."""

__version__ = "0.1.0"
