"""The user-facing error base, apart from the CLI so adapters can raise it.

A ``UserError`` is anything the user can fix (configuration, arguments, a platform
refusing the credentials): ``plnbot`` prints its message as one line on stderr and exits
with code 2, never a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Anything the user can fix; its message is printed as is."""
