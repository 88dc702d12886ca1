import numpy as np
import pytest
from numpy.typing import NDArray

from tests.engine.engine_reference import make_cohort


@pytest.fixture
def course_rows() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The four pupils of the course we know: (maths, info, français) -> concours."""
    X = np.array([[12, 15, 9], [5, 9, 12], [13, 12, 13], [10, 12, 15]], dtype=np.float64)
    y = np.array([14, 7, 12, 11], dtype=np.float64)
    return X, y


@pytest.fixture
def cohort() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return make_cohort()
