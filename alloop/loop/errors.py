"""The loop's own errors."""


class InvalidAnswerError(ValueError):
    """An oracle answered with a label outside the known classes (valid answers were kept)."""


class StoreNotEmptyError(RuntimeError):
    """A fresh run was started on a label store that already holds answers."""
