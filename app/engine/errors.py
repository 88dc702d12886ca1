"""The engine's exceptions: one hierarchy so the service can map each to one HTTP status."""


class EngineError(Exception):
    """Base class of every error the learning engine raises on purpose."""


class InvalidConfigError(EngineError, ValueError):
    """A training option is out of range; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class DegenerateDataError(EngineError, ValueError):
    """The data cannot be fitted as given (shape, non-finite value, constant column...).

    `feature` is the offending column, if one is; `parameter` the option that makes these
    data unusable (a hold-out that leaves too few training rows), if one does.
    """

    def __init__(
        self, message: str, *, feature: int | None = None, parameter: str | None = None
    ) -> None:
        super().__init__(message)
        self.feature = feature
        self.parameter = parameter


class DivergenceError(EngineError):
    """The iterates blew up: the learning rate is too large for these data."""

    def __init__(
        self,
        message: str,
        *,
        step: int,
        learning_rate: float,
        max_stable_learning_rate: float,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.learning_rate = learning_rate
        self.max_stable_learning_rate = max_stable_learning_rate


class TrainingCancelled(EngineError):
    """`should_stop()` returned True; `steps_done` steps had been computed."""

    def __init__(self, steps_done: int, total_steps: int) -> None:
        super().__init__(f"training cancelled after {steps_done} of {total_steps} steps")
        self.steps_done = steps_done
        self.total_steps = total_steps
