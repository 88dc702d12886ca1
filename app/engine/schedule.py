"""How many steps a fit takes: the one count that the engine runs and the service plans."""

from app.engine.config import TrainingConfig
from app.engine.data import split_holdout


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """The course's batches B = {b, ..., b+batch_size−1}, the short last one kept."""
    return -(-n_train // batch_size)


def planned_steps(n_rows: int, config: TrainingConfig) -> int:
    """Steps `fit` will take on `n_rows` pupils (early stopping may end it sooner).

    Raises DegenerateDataError (naming `validation_fraction`) when the hold-out leaves
    fewer than two training rows, as `fit` would.
    """
    train_idx, _ = split_holdout(n_rows, config.validation_fraction, config.seed)
    if config.algorithm == "closed_form":
        return 1
    if config.algorithm == "gd":
        return config.iterations
    return config.epochs * steps_per_epoch(len(train_idx), config.batch_size)
