"""The files in deploy/ agree with the code: every setting they set exists, the service
manager's stop timeout covers hoga's bounded shutdown, the sandbox and the image keep their
promises. (``make test-deploy`` builds and runs them; these checks are the fast half.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hoga.config import Settings
from hoga.server import shutdown as app_mod

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCS = DEPLOY.parent / "docs" / "operations.md"
# uvicorn's connection drain before HogaApp.stop() (cli.serve: timeout_graceful_shutdown).
DRAIN = 3.0


def _env_keys(text: str, *, commented: bool) -> set[str]:
    pattern = r"^#\s*(HOGA_\w+)=" if commented else r"^(HOGA_\w+)="
    return {m.lower().removeprefix("hoga_") for m in re.findall(pattern, text, re.M)}


def test_env_example_sets_only_real_settings() -> None:
    text = (DEPLOY / "hoga.env.example").read_text()
    active = _env_keys(text, commented=False)
    assert active and active <= set(Settings.model_fields), active - set(Settings.model_fields)
    mentioned = _env_keys(text, commented=True)
    assert mentioned <= set(Settings.model_fields)
    assert "trusted_proxies" in active  # behind the reverse proxy it is needed
    # The database logins come from compose.yaml; a systemd install copies the three lines.
    assert {"database_url", "database_owner_url", "database_system_url"} <= mentioned
    assert "database_app_role" not in active | mentioned  # the app login is the role itself


def test_compose_sets_only_real_settings_and_mounts_what_exists() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    keys = {
        k.lower().removeprefix("hoga_")
        for k in re.findall(r"^\s+(HOGA_\w+):", text, re.M)
        if not k.startswith("HOGA_DB_")  # the postgres container's own variables
    }
    assert keys and keys <= set(Settings.model_fields), keys - set(Settings.model_fields)
    for path in re.findall(r"- \./([\w./-]+):", text):
        assert (DEPLOY / path).exists(), path
    example = (DEPLOY / "compose.env.example").read_text()
    for var in set(re.findall(r"\$\{(\w+)(?::[-?][^}]*)?\}", text)):
        assert re.search(rf"^{var}=", example, re.M), f"{var} is not in compose.env.example"


def _unit() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / "hoga.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def test_systemd_stop_timeout_covers_the_bounded_shutdown() -> None:
    unit = _unit()
    # Every part gets at most 3 s and at least 0.5 s: the worst case is the deadline plus
    # 0.5 s per part that found the deadline already spent.
    assert float(unit["TimeoutStopSec"]) >= DRAIN + app_mod.STOP_DEADLINE + 15 * 0.5


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("User", "hoga"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/hoga"),
        ("NoNewPrivileges", "true"),
        ("PrivateTmp", "true"),
        ("ProtectHome", "true"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_systemd_sandbox(key: str, value: str) -> None:
    assert _unit()[key] == value


def test_image_runs_unprivileged_with_a_health_check_and_a_chosen_base() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=", text, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", text, re.M)) == 2  # builder + runtime
    assert re.search(r"^USER hoga$", text, re.M)
    assert re.search(r'^HEALTHCHECK .*\n?.*CMD \["hoga", "healthcheck"\]', text, re.M)
    assert 'VOLUME ["/var/lib/hoga"]' in text
    # Offline: nothing is fetched, every pip call uses the wheelhouse only.
    pip_calls = re.findall(r"pip (?:install|wheel)[^&]*", text)
    assert len(pip_calls) == 3 and all("--no-index" in c for c in pip_calls), pip_calls


def test_roles_file_makes_three_unprivileged_login_roles() -> None:
    sql = (DEPLOY / "postgres" / "roles.sql").read_text()
    for role in ("owner", "app", "system"):
        assert re.search(
            rf'ALTER ROLE :"{role}"\s+LOGIN PASSWORD .* NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
            sql,
        ), role
    assert 'ALTER SCHEMA public OWNER TO :"owner"' in sql
    # Separate logins: no role is granted to another (the old GRANT app TO owner is gone), so
    # no login has a role to SET ROLE to.
    assert not re.search(r"^\s*GRANT\s+:\"\w+\"\s+TO\b", sql, re.M | re.I)


def test_the_documented_roles_sql_is_the_deployed_file() -> None:
    """One source of truth: docs/operations.md shows deploy/postgres/roles.sql verbatim (the
    block the PostgreSQL role tests run), so the guide, compose and the tests use one SQL."""
    doc = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- roles-sql -->\s*```sql\n(.*?)```", doc, re.S)
    assert block, "docs/operations.md lost its roles SQL block"
    assert block.group(1) == (DEPLOY / "postgres" / "roles.sql").read_text(encoding="utf-8")


def test_compose_logs_in_with_the_three_roles() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    active = dict(re.findall(r"^\s+(HOGA_DATABASE_\w+):\s*(\S+)", text, re.M))
    for setting, role in (
        ("HOGA_DATABASE_URL", "app"),
        ("HOGA_DATABASE_OWNER_URL", "owner"),
        ("HOGA_DATABASE_SYSTEM_URL", "system"),
    ):
        url = active[setting]
        assert url.startswith("postgresql+asyncpg://${DB_NAME:-hoga}_" + role + ":"), url
        assert "${DB_" + role.upper() + "_PASSWORD" in url, url
    assert "HOGA_DATABASE_APP_ROLE" not in active
    assert "HOGA_DATABASE_ALLOW_SUPERUSER" not in text
