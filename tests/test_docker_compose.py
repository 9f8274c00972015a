"""docker-compose.yml (Docker cannot run here): it parses, builds the Dockerfile, runs
PostgreSQL and two workers on it, and every setting it passes is one plnbot reads."""

from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

from bot.config import Settings
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_postgresql_with_a_healthcheck_and_a_volume():
    db = SERVICES["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert db["volumes"][0].split(":")[0] in COMPOSE["volumes"]


def test_two_workers_built_from_the_dockerfile():
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["command"] == ["run", "--worker"]
    build = worker["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert worker["depends_on"] == {"db": {"condition": "service_healthy"},
                                    "migrate": {"condition": "service_completed_successfully"}}
    assert SERVICES["migrate"]["command"] == ["db", "upgrade"]


def test_the_workers_database_url_points_at_the_db_service():
    db_env = SERVICES["db"]["environment"]
    for name in ("worker", "migrate"):
        raw = SERVICES[name]["environment"]["DATABASE_URL"]
        url = make_url(raw.replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}", "pw"))
        assert url.drivername == "postgresql+psycopg" and url.host == "db"
        assert url.username == db_env["POSTGRES_USER"] and url.database == db_env["POSTGRES_DB"]


def test_every_variable_passed_is_a_setting_plnbot_reads():
    known = {field.alias for field in Settings.model_fields.values()}
    for name in ("worker", "migrate"):
        assert set(SERVICES[name]["environment"]) <= known


def test_the_dockerfile_runs_plnbot_and_copies_what_exists():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["plnbot"]' in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert ".env" in Path(ROOT / ".dockerignore").read_text().split()
