"""Schemathesis against the app's own OpenAPI schema, over real HTTP: every check it has
(``--checks all``: no 5xx, status codes, content types, headers and bodies as documented,
invalid data refused, ``ignored_auth``, ``use_after_free``, ``ensure_resource_availability``,
the stateful multi-request phase...), with an admin key of a tenant of its own.

``GRADECAST_SCHEMATHESIS_EXAMPLES`` scales the examples per operation (default 100)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from app.db.models import Role
from tests.conftest import make_settings, make_tenant, start_server

EXAMPLES = int(os.environ.get("GRADECAST_SCHEMATHESIS_EXAMPLES", "100"))
SCHEMATHESIS = Path(sys.executable).with_name("st")

# Bodies whose validity depends on several fields at once, which JSON Schema cannot say:
# a cohort's pupils must have exactly the listed features (and a CSV upload needs `?name=`),
# a version's Θ one weight per feature, a job's `patience` a `validation_fraction`, a CSV
# prediction `?model=`, a webhook's URL https and a public host, an OIP v2 inference one input
# per feature of the version, an evaluation a cohort with the version's columns. Schema-valid
# data may get a 422 there, and only there; every other check (including "schema-violating
# data is refused") still applies to them.
CONFIG = textwrap.dedent(
    """
    {operations}
    """
).format(
    operations="\n".join(
        textwrap.dedent(
            f"""
            [[operations]]
            include-name = "{name}"
            checks.positive_data_acceptance.expected-statuses = [
                "2xx", "401", "403", "404", "409", "422",
            ]
            """
        )
        for name in (
            "POST /cohorts",
            "POST /jobs",
            "POST /models/{name}/versions",
            "POST /models/{name}/versions/{version}/evaluations",
            "POST /predict",
            # A URL's scheme and host are checked beyond what a JSON Schema says.
            "POST /webhooks",
            "POST /v2/models/{name}/infer",
            "POST /v2/models/{name}/versions/{version}/infer",
        )
    )
)


def test_the_api_keeps_the_promises_of_its_schema(database_url: str, tmp_path: Path) -> None:
    # A server of its own: no workers (queued jobs stay queued, no CPU spent training), a
    # tenant nobody else uses, and a metrics token, so that /metrics is, as its schema says,
    # behind a bearer token (a different one: schemathesis sees its 401s).
    # Its queued jobs never end: each GET /jobs/{id}?wait= would hold for its whole wait.
    settings = make_settings(
        database_url, tmp_path, workers=0, metrics_token="metrics-secret", job_wait_seconds=0.2
    )
    server = start_server(settings)
    try:
        tenant = make_tenant(server)
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG)
        command = [
            str(SCHEMATHESIS),
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--header",
            f"Authorization: Bearer {tenant.keys[Role.admin]}",
            # Revoking a key may revoke the run's own: every later call would be a
            # (documented) 401, and the rest of the run would test nothing.
            "--exclude-path",
            "/api-keys/{key_id}",
            "--generation-database",
            "none",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "30",
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=1200, cwd=tmp_path, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Test cases:" in result.stdout
    finally:
        server.stop()
        server.database.engine.dispose()
