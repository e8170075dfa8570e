"""The one exception type users see: a mistake they can fix, said in one line."""


class DwzError(Exception):
    """A user-facing error: bad argument, missing file, malformed input.

    The CLI prints its message without a traceback and exits with status 2.
    The message names the thing that is wrong and, where possible, what to do.
    """
