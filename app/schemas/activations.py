from typing import Any, Literal

from pydantic import BaseModel, Field

ActivationRule = Literal["always", "never", "if_better", "gate"]


class ActivationOutcome(BaseModel):
    """Whether a finished job's version became the active one, and why."""

    activated: bool = Field(examples=[False])
    rule: ActivationRule = Field(
        description="`always`, `never`, `if_better` (compared on the job's hold-out, or its "
        "training rows without one) or `gate` (if_better judged by the RMSE on the job's "
        "gate_cohort_id, a later cohort)",
        examples=["gate"],
    )
    compared_with_version: int | None = Field(
        description="The version that was active when the job finished, if it was compared with it",
        examples=[1],
    )
    figures: dict[str, Any] = Field(
        description="What was compared: `metric` (`risk` or `rmse`), `new` and `active` (the "
        "two figures), `rows` for if_better (`validation` or `training`); for the gate also "
        "`cohort_id`, `cohort_name` and the two evaluations' ids. Empty when nothing was "
        "compared",
        examples=[
            {
                "metric": "rmse",
                "cohort_id": "0b6c9f1e-2d3a-4e5f-8a9b-1c2d3e4f5a6b",
                "cohort_name": "promo 2020-2021",
                "new": 1.52,
                "active": 1.49,
                "new_evaluation_id": "4f0e9a1b-6c2d-4b3e-9f8a-7d6c5b4a3e21",
                "active_evaluation_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            }
        ],
    )
    reason: str = Field(
        description="The same in one sentence, as in the activation history",
        examples=[
            "gate on 'promo 2020-2021': rmse 1.52 is not below 1.49 of version 1; not activated"
        ],
    )


GATE_COHORT_DESCRIPTION = (
    "With activate=if_better only: a later cohort (of this organisation, other than "
    "cohort_id, with the training cohort's features and target) on which the new version "
    "and the active one are evaluated when the job finishes (stored as evaluations); the new "
    "version becomes active only if its RMSE there is strictly lower"
)
