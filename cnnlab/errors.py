"""The one exception type that carries a message meant for the user."""


class UserError(ValueError):
    """Bad input from a user (spec, flag, widget, file): ``str(err)`` is one clear line.

    The CLI prints it as ``cnnlab: error: <message>`` and exits 2; pages show it inline.
    """
