"""Evaluations on a later cohort through real HTTP, checked against numpy on the same rows."""

import json
from typing import Any

import httpx
import numpy as np
import pytest

from app.db.models import Role
from app.engine import student_t_975
from tests.conftest import Tenant
from tests.test_jobs import submit, wait_for

FEATURES = ["maths", "info", "francais"]
COURSE_THETA = [0.5, 0.3, 0.3, 0.33]


def school_year(seed: int, n: int, low: float = 0, high: float = 20) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = np.round(rng.uniform(low, high, size=(n, 3)), 2)
    y = np.clip(np.round(1 + X @ [0.3, 0.3, 0.3] + rng.normal(0, 1.5, size=n), 2), 0, 20)
    return X, y


def upload(
    client: httpx.Client,
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    *,
    target: str = "concours",
    groups: list[str | None] | None = None,
) -> dict[str, Any]:
    students: list[dict[str, Any]] = [
        {**dict(zip(FEATURES, row, strict=True)), target: value}
        for row, value in zip(X.tolist(), y.tolist(), strict=True)
    ]
    body: dict[str, Any] = {"name": name, "features": FEATURES, "target": target}
    if groups is not None:
        for student, label in zip(students, groups, strict=True):
            student["classe"] = label
        body["group_column"] = "classe"
    response = client.post("/cohorts", json={**body, "students": students})
    assert response.status_code == 201, response.text
    cohort: dict[str, Any] = response.json()
    return cohort


def expected_figures(
    theta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    half_width: np.ndarray | None,
) -> dict[str, Any]:
    """The figures written out directly: ŷ clipped to [0, 20], errors ŷ − y, coverage."""
    raw = X @ theta[1:] + theta[0]
    predicted = np.clip(raw, 0, 20)
    errors = predicted - y
    figures: dict[str, Any] = {
        "n": len(y),
        "rmse": np.sqrt(np.mean(errors**2)),
        "mae": np.mean(np.abs(errors)),
        "mean_error": np.mean(errors),
        "interval_coverage": None,
    }
    if half_width is not None:
        low, high = np.clip(raw - half_width, 0, 20), np.clip(raw + half_width, 0, 20)
        figures["interval_coverage"] = np.mean((low <= y) & (y <= high))
    return figures


def assert_close(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if value is None:
            assert actual[key] is None, key
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.fixture
def year(trainer: httpx.Client) -> dict[str, Any]:
    """Trained on 2019-2020 (v1, closed_form, active), a hand-set v2, 2020-2021's results."""
    X_train, y_train = school_year(1, 80, 2, 18)
    training = upload(trainer, "promo 2019-2020", X_train, y_train)
    job = wait_for(
        trainer,
        submit(trainer, cohort_id=training["id"], model="concours", algorithm="closed_form")["id"],
    )
    assert job["status"] == "succeeded", job
    response = trainer.post(
        "/models/concours/versions",
        json={"features": FEATURES, "target": "concours", "theta": COURSE_THETA},
    )
    assert response.status_code == 201, response.text
    X, y = school_year(2, 60)
    groups: list[str | None] = [["3A", "3B", "3C"][i % 3] for i in range(60)]
    groups[5] = None
    later = upload(trainer, "promo 2020-2021", X, y, groups=groups)
    return {"train": (X_train, y_train), "later": later, "X": X, "y": y, "groups": groups}


def test_evaluation_figures_equal_numpy_on_the_same_rows(
    trainer: httpx.Client, year: dict[str, Any]
) -> None:
    X, y, groups = year["X"], year["y"], np.asarray(year["groups"], dtype=object)
    X_train, y_train = year["train"]
    version = trainer.get("/models/concours/versions/1").json()
    assert version["interval"] == "ols"
    theta = np.asarray(version["theta"])
    # The OLS interval written from its textbook formula on the training rows.
    design = np.column_stack([np.ones(len(y_train)), X_train])
    dof = len(y_train) - 4
    s = np.sqrt(np.sum((design @ theta - y_train) ** 2) / dof)
    later_design = np.column_stack([np.ones(len(y)), X])
    leverage = np.einsum(
        "ij,jk,ik->i", later_design, np.linalg.inv(design.T @ design), later_design
    )
    half = student_t_975(dof) * s * np.sqrt(1 + leverage)

    response = trainer.post(
        "/models/concours/versions/1/evaluations", json={"cohort_id": year["later"]["id"]}
    )
    assert response.status_code == 201, response.text
    evaluation = response.json()
    assert evaluation["active"] is True
    assert evaluation["version"] == 1
    assert evaluation["cohort_name"] == "promo 2020-2021"
    assert_close(evaluation, expected_figures(theta, X, y, half))
    assert evaluation["interval_coverage"] is not None
    predicted = np.clip(X @ theta[1:] + theta[0], 0, 20)
    errors = predicted - y
    assert evaluation["mse"] == pytest.approx(np.mean(errors**2), rel=1e-9)
    r2 = 1 - np.sum(errors**2) / np.sum((y - y.mean()) ** 2)
    assert evaluation["r2"] == pytest.approx(r2, rel=1e-9)
    outside = (X_train.min(axis=0) > X) | (X_train.max(axis=0) < X)
    assert evaluation["extrapolated"] == int(outside.any(axis=1).sum()) > 0
    assert sorted(evaluation["by_group"]) == ["3A", "3B", "3C"]
    for label, figures in evaluation["by_group"].items():
        rows = groups == label
        assert_close(figures, expected_figures(theta, X[rows], y[rows], half[rows]))
    assert sum(g["n"] for g in evaluation["by_group"].values()) == 59
    bins = evaluation["calibration"]
    assert len(bins) == 10
    assert sum(b["n"] for b in bins) == 60
    first = np.argsort(predicted, kind="stable")[: bins[0]["n"]]
    assert bins[0]["mean_actual"] == pytest.approx(np.mean(y[first]), rel=1e-9)
    assert [b["mean_predicted"] for b in bins] == sorted(b["mean_predicted"] for b in bins)
    pairs = np.asarray(evaluation["sample"])
    assert pairs.shape == (60, 2)
    np.testing.assert_allclose(pairs, np.column_stack([predicted, y]), rtol=1e-12)

    listed = trainer.get("/models/concours/versions/1/evaluations").json()
    assert listed["count"] == 1
    assert listed["data"][0] == evaluation


def test_hand_set_sigma_interval_and_the_leaderboard(
    trainer: httpx.Client, reader: httpx.Client, year: dict[str, Any]
) -> None:
    cohort_id = year["later"]["id"]
    for version in (1, 2):
        response = trainer.post(
            f"/models/concours/versions/{version}/evaluations", json={"cohort_id": cohort_id}
        )
        assert response.status_code == 201, response.text
    second = response.json()
    assert_close(second, expected_figures(np.asarray(COURSE_THETA), year["X"], year["y"], None))
    assert second["extrapolated"] == 0  # a hand-set Θ has no training range

    board = reader.get("/models/concours/evaluations", params={"cohort_id": cohort_id}).json()
    assert board["count"] == 2
    rmses = [e["rmse"] for e in board["data"]]
    assert rmses == sorted(rmses)
    assert {e["version"]: e["active"] for e in board["data"]} == {1: True, 2: False}


def test_evaluations_survive_the_cohorts_erasure_without_their_sample(
    trainer: httpx.Client, year: dict[str, Any]
) -> None:
    cohort_id = year["later"]["id"]
    created = trainer.post(
        "/models/concours/versions/1/evaluations", json={"cohort_id": cohort_id}
    ).json()
    assert trainer.delete(f"/cohorts/{cohort_id}").status_code == 204
    board = trainer.get("/models/concours/evaluations", params={"cohort_id": cohort_id}).json()
    assert board["count"] == 1
    kept = board["data"][0]
    assert kept["cohort_erased"] is True
    assert kept["sample"] is None
    assert {k: v for k, v in kept.items() if k not in ("sample", "cohort_erased")} == {
        k: v for k, v in created.items() if k not in ("sample", "cohort_erased")
    }


def test_bad_evaluations_name_the_field_and_store_nothing(
    trainer: httpx.Client, reader: httpx.Client, other_tenant: Tenant, year: dict[str, Any]
) -> None:
    with other_tenant.client(Role.trainer) as stranger:
        foreign = upload(stranger, "autre école", year["X"], year["y"])
    bac = upload(trainer, "bac blanc", year["X"], year["y"], target="bac")
    url = "/models/concours/versions/1/evaluations"
    cases: list[tuple[httpx.Client, str, Any, int, list[str]]] = [
        (trainer, url, {"cohort_id": foreign["id"]}, 404, ["body", "cohort_id"]),
        (trainer, url, {"cohort_id": bac["id"]}, 422, ["body", "cohort_id"]),
        (trainer, url, {"cohort_id": "not-a-uuid"}, 422, ["body", "cohort_id"]),
        (trainer, url, {"cohort_id": bac["id"], "extra": 1}, 422, ["body", "extra"]),
        (
            trainer,
            "/models/concours/versions/9/evaluations",
            {"cohort_id": year["later"]["id"]},
            404,
            ["path", "version"],
        ),
        (reader, url, {"cohort_id": year["later"]["id"]}, 403, []),
    ]
    for client, target_url, body, status, loc in cases:
        response = client.post(target_url, json=body)
        assert response.status_code == status, (body, response.text)
        if loc:
            assert loc in [error["loc"] for error in response.json()["errors"]], response.text
    missing = trainer.post(url, json={"cohort_id": bac["id"]}).json()["detail"]
    assert "'concours'" in missing
    assert "'maths'" not in missing.split("(")[0]
    assert trainer.get(url).json()["count"] == 0
    response = trainer.get("/models/concours/evaluations", params={"cohort_id": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cohort_id"]


def table_row(markdown: str, first_cell: str) -> list[str]:
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, (first_cell, rows)
    return [cell.strip() for cell in rows[0].strip("|").split(" | ")][1:]


def test_the_model_card_tells_the_apis_figures_to_the_digit(
    trainer: httpx.Client, reader: httpx.Client, year: dict[str, Any]
) -> None:
    evaluation = trainer.post(
        "/models/concours/versions/1/evaluations", json={"cohort_id": year["later"]["id"]}
    ).json()
    version = reader.get("/models/concours/versions/1").json()
    response = reader.get("/models/concours/versions/1/card")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    card = response.text
    assert card.startswith("# Model card: concours, version 1\n")
    assert "GDPR Art. 22" in card
    columns = ["n", "rmse", "mae", "mean_error", "r2", "interval_coverage", "extrapolated"]
    assert table_row(card, "promo 2020-2021") == [json.dumps(evaluation[c]) for c in columns]
    for label, figures in evaluation["by_group"].items():
        expected = [json.dumps(figures[c]) for c in columns if c in figures]
        assert table_row(card, label) == expected
    for name, value in version["metrics"].items():
        assert table_row(card, name) == [json.dumps(value)], name
    assert f"w0 = {json.dumps(version['theta'][0])}" in card
    for j, weight in enumerate(version["theta"][1:], start=1):
        assert f"w{j} ({version['feature_labels'][j - 1]}) = {json.dumps(weight)}" in card
    low, high = version["training_range"]["maths"]
    assert table_row(card, "maths") == [json.dumps(low), json.dumps(high)]
    assert "| null | 1 |" in card  # the first activation: from no version to version 1

    french = reader.get(
        "/models/concours/versions/1/card", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
    )
    assert french.headers["content-language"] == "fr"
    assert french.text.startswith("# Fiche du modèle : concours, version 1\n")
    assert "article 22 du RGPD" in french.text
    assert table_row(french.text, "promo 2020-2021") == table_row(card, "promo 2020-2021")
    english = reader.get(
        "/models/concours/versions/1/card", headers={"Accept-Language": "en;q=0.9,fr;q=0.5"}
    )
    assert english.headers["content-language"] == "en"

    page = reader.get("/models/concours/versions/1/card", headers={"Accept": "text/html"})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text.startswith("<!DOCTYPE html>")
    for outside in ("<script", "<link", "<img", "src=", "href="):
        assert outside not in page.text
    assert f"<td>{json.dumps(evaluation['rmse'])}</td>" in page.text
    forced = reader.get(
        "/models/concours/versions/1/card",
        params={"format": "markdown"},
        headers={"Accept": "text/html"},
    )
    assert forced.text == card
    bad = reader.get("/models/concours/versions/1/card", params={"format": "pdf"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["query", "format"]


def test_the_card_of_a_version_whose_cohort_was_erased_says_so(
    trainer: httpx.Client, year: dict[str, Any]
) -> None:
    version = trainer.get("/models/concours/versions/1").json()
    assert trainer.delete(f"/cohorts/{version['cohort_id']}").status_code == 204
    card = trainer.get("/models/concours/versions/1/card").text
    assert "The training cohort has since been erased" in card
    hand_set = trainer.get("/models/concours/versions/2/card").text
    assert "none: Θ was entered by hand" in hand_set
    assert "Never active." in hand_set


def test_an_evaluation_is_audited_and_a_retry_stores_it_once(
    trainer: httpx.Client, admin: httpx.Client, year: dict[str, Any]
) -> None:
    cohort_id = year["later"]["id"]
    key = {"Idempotency-Key": f"evaluation-{cohort_id}"}
    path = "/models/concours/versions/1/evaluations"
    first = trainer.post(path, json={"cohort_id": cohort_id}, headers=key)
    again = trainer.post(path, json={"cohort_id": cohort_id}, headers=key)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()
    assert trainer.get(path).json()["count"] == 1
    trail = admin.get("/audit", params={"action": "evaluation.created"}).json()["data"]
    assert [(e["object"], e["figures"]["n"], e["figures"]["rmse"]) for e in trail] == [
        (path, first.json()["n"], first.json()["rmse"])
    ]
