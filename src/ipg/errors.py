"""Errors the study reports to users as one clear line (no deep traceback)."""


class IPGError(Exception):
    """A user-facing error: the message names the bad key / file / row and the fix."""


class UnknownNameError(IPGError, KeyError):
    """A registry lookup of a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line
        return str(self.args[0]) if self.args else ""
