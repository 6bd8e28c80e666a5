"""The one exception type that carries a message meant for the user, and one line for any error."""


class UserError(ValueError):
    """Bad input from a user (spec, flag, widget, file): ``str(err)`` is one clear line.

    The CLI prints it as ``cnnlab: error: <message>`` and exits 2; pages show it inline.
    """


def error_text(err: BaseException) -> str:
    """One line for any exception: a UserError's own text, otherwise its type and first line."""
    if type(err).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError (no torch import)
        return "out of GPU memory: use a smaller batch size or input size"
    if isinstance(err, UserError):
        return str(err)
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"[:500]
