"""What the deployment test checks: the database and roles, the running container, the
systemd unit, the Caddyfile and compose.yaml."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from deploy_images import image_exists
from deploy_shell import (
    BASE_IMAGE,
    CACHE,
    DEPLOY,
    IMAGE,
    PG_HOST,
    PG_SUPERUSER,
    DeployError,
    free_port,
    http,
    sh,
    step,
    wait_for,
)

# ------------------------------------------------------------------ database


class Database:
    """A fresh database and roles (unique names) on the local PostgreSQL, made by the same
    init-roles.sh + roles.sql that compose runs."""

    def __init__(self) -> None:
        self.name = f"hoga_deploy_{secrets.token_hex(4)}"
        self.passwords = {k: secrets.token_hex(12) for k in ("owner", "app", "system")}

    def psql(self, *args: str, db: str = "postgres") -> str:
        return sh(
            "psql", "-h", PG_HOST, "-U", PG_SUPERUSER, "-d", db, "-v", "ON_ERROR_STOP=1",
            "-Atq", *args, quiet=True,
        )  # fmt: skip

    @step("PostgreSQL: fresh database and roles (deploy/postgres/init-roles.sh)")
    def create(self) -> None:
        env = {
            **os.environ,
            "PGHOST": PG_HOST,
            "POSTGRES_USER": PG_SUPERUSER,
            "HOGA_DB_NAME": self.name,
            "HOGA_DB_OWNER_PASSWORD": self.passwords["owner"],
            "HOGA_DB_APP_PASSWORD": self.passwords["app"],
            "HOGA_DB_SYSTEM_PASSWORD": self.passwords["system"],
            "HOGA_ROLES_SQL": str(DEPLOY / "postgres" / "roles.sql"),
        }
        sh("sh", DEPLOY / "postgres" / "init-roles.sh", env=env)

    def url(self, role: str) -> str:
        pw = self.passwords[role]
        return f"postgresql+asyncpg://{self.name}_{role}:{pw}@{PG_HOST}:5432/{self.name}"

    def drop(self) -> None:
        with contextlib.suppress(DeployError):
            self.psql("-c", f'drop database if exists "{self.name}" with (force)')
        for role in ("owner", "app", "system"):
            with contextlib.suppress(DeployError):
                self.psql("-c", f'drop role if exists "{self.name}_{role}"')


def database_env(db: Database) -> dict[str, str]:
    """One login per role, as compose.yaml and the VPS guide configure them."""
    return {
        "HOGA_DATABASE_URL": db.url("app"),
        "HOGA_DATABASE_SYSTEM_URL": db.url("system"),
        "HOGA_DATABASE_OWNER_URL": db.url("owner"),
    }


# ------------------------------------------------------------------ the container


class Container:
    """The hoga image running with --network host, its data dir on a named volume."""

    def __init__(self, env: dict[str, str]) -> None:
        suffix = secrets.token_hex(4)
        self.name = f"hoga-deploy-{suffix}"
        self.volume = f"hoga-deploy-data-{suffix}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "HOGA_PORT": str(self.port), "HOGA_HOST": "127.0.0.1"}

    @step("docker run (network host)")
    def start(self, env_file: Path) -> None:
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        env_file.chmod(0o600)
        sh(
            "docker", "run", "-d", "--name", self.name, "--network", "host",
            "--env-file", env_file, "-v", f"{self.volume}:/var/lib/hoga",
            # The image's health check, but often enough for a test to see it pass.
            "--health-interval", "2s", "--health-start-period", "300s",
            "--stop-timeout", "30", IMAGE, quiet=True,
        )  # fmt: skip

    def logs(self) -> str:
        res = subprocess.run(
            ["docker", "logs", "--tail", "60", self.name], capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        return res.stdout + res.stderr

    def running(self) -> bool:
        state = sh("docker", "inspect", "-f", "{{.State.Status}}", self.name, quiet=True)
        if state.strip() in ("exited", "dead"):
            raise DeployError(f"the container stopped:\n{self.logs()}")
        return True

    def ready(self) -> bool:
        self.running()
        status, _ = http("GET", f"{self.base}/ready")
        return status == 200

    def healthy(self) -> bool:
        self.running()
        out = sh("docker", "inspect", "-f", "{{.State.Health.Status}}", self.name, quiet=True)
        return out.strip() == "healthy"

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", "-v", self.name], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", self.volume], capture_output=True, check=False)


def sign_in(base: str, password: str) -> str:
    status, body = http(
        "POST", f"{base}/api/auth/login", {"username": "admin", "password": password}
    )
    if status != 200:
        raise DeployError(f"sign-in failed: {status} {body}")
    return str(body["access_token"])


@step("in the container: /ready, health check, non-root, sign in, paper order filled")
def exercise(c: Container, admin_password: str) -> int:
    wait_for("/ready 200", c.ready, 300)
    wait_for("docker health status 'healthy'", c.healthy, 120)
    uid = sh("docker", "exec", c.name, "id", "-u", quiet=True).strip()
    if uid == "0":
        raise DeployError("hoga runs as root in the container")
    token = sign_in(c.base, admin_password)
    status, order = http(
        "POST",
        f"{c.base}/api/orders",
        {"symbol": "005930", "side": "buy", "type": "market", "qty": 3,
         "client_order_id": "deploy-1"},
        token,
    )  # fmt: skip
    if status != 202:
        raise DeployError(f"order refused: {status} {order}")
    order_id = order["id"]

    def filled() -> bool:
        status, o = http("GET", f"{c.base}/api/orders/{order_id}", token=token)
        return status == 200 and o["status"] == "FILLED"

    wait_for(f"order {order_id} FILLED", filled, 120)
    print(f"    order {order_id} filled (container uid {uid})", flush=True)
    return int(order_id)


@step("docker stop + start: a clean stop, and the order is still there")
def restart_keeps_order(c: Container, admin_password: str, order_id: int) -> None:
    t0 = time.monotonic()
    sh("docker", "stop", "-t", "30", c.name, quiet=True)
    stopped = time.monotonic() - t0
    code = sh("docker", "inspect", "-f", "{{.State.ExitCode}}", c.name, quiet=True).strip()
    if code != "0":
        # 137 would mean docker had to SIGKILL it: the bounded shutdown did not hold.
        raise DeployError(f"hoga exited with {code} on SIGTERM (after {stopped:.1f} s)")
    print(f"    stopped cleanly in {stopped:.1f} s (exit 0)", flush=True)
    sh("docker", "start", c.name, quiet=True)
    wait_for("/ready 200 after restart", c.ready, 300)
    token = sign_in(c.base, admin_password)
    status, o = http("GET", f"{c.base}/api/orders/{order_id}", token=token)
    if status != 200 or o["status"] != "FILLED" or o["filled_qty"] != 3:
        raise DeployError(f"after the restart order {order_id} is {status} {o}")
    status, listing = http("GET", f"{c.base}/api/orders", token=token)
    if [x["id"] for x in listing["orders"]] != [order_id]:
        raise DeployError(f"after the restart the orders are {listing}")


# ------------------------------------------------------------------ systemd unit

SYSTEMD_BASE = "hoga-systemd-base:bookworm"
SYSTEMD_IMAGE = "hoga-systemd:test"
UNIT_IMAGE = """\
FROM {base}
COPY --from={image} /opt/hoga /opt/hoga
RUN useradd --system --home-dir /var/lib/hoga --shell /usr/sbin/nologin hoga \\
 && install -d -o hoga -g hoga -m 0700 /var/lib/hoga && install -d -m 0750 /etc/hoga
COPY hoga.service /etc/systemd/system/hoga.service
RUN systemctl enable hoga.service
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
"""


@step("systemd unit: booted with systemd as PID 1 in a container")
def run_unit_under_systemd(db: Database) -> None:
    """deploy/hoga.service as a real service: systemd starts it as user hoga with the sandbox
    applied (checked in the process: no capabilities, no new privileges, / read-only and the
    data dir writable in its mount namespace), it serves, and ``systemctl stop`` ends it cleanly
    well inside TimeoutStopSec. The image is /opt/hoga from the hoga image on Debian with systemd
    (apt, from the Debian mirror; kept between runs)."""
    if not image_exists(SYSTEMD_BASE):
        sh(
            "docker", "build", "--network", "host", "-t", SYSTEMD_BASE, "-",
            input=f"FROM {BASE_IMAGE}\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq --no-install-recommends systemd systemd-sysv >/dev/null "
            "&& rm -rf /var/lib/apt/lists/*\n",
            quiet=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
    name = f"hoga-systemd-{secrets.token_hex(4)}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hoga-systemd-", dir=CACHE) as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(UNIT_IMAGE.format(base=SYSTEMD_BASE, image=IMAGE))
        shutil.copy(DEPLOY / "hoga.service", ctx / "hoga.service")
        sh("docker", "build", "--network", "none", "-t", SYSTEMD_IMAGE, ctx, quiet=True,
           env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
        env = {**database_env(db), "HOGA_HOST": "127.0.0.1", "HOGA_PORT": str(port)}
        env_file = ctx / "hoga.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        env_file.chmod(0o600)
        # Not --privileged (this VM's kernel refuses some capabilities): systemd needs
        # CAP_SYS_ADMIN for its namespaces, and no docker seccomp filter under its own.
        sh(
            "docker", "run", "-d", "--name", name, "--network", "host",
            "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
            "--security-opt", "apparmor=unconfined",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
            "-v", f"{env_file}:/etc/hoga/hoga.env:ro", SYSTEMD_IMAGE, quiet=True,
        )  # fmt: skip
        try:

            def in_box(cmd: str) -> str:
                return sh("docker", "exec", name, "sh", "-c", cmd, quiet=True).strip()

            def healthy() -> bool:
                status, _ = http("GET", f"http://127.0.0.1:{port}/health")
                return status == 200

            try:
                wait_for("hoga.service answering /health", healthy, 300)
            except DeployError:
                print(
                    in_box(
                        "systemctl status hoga --no-pager; journalctl -u hoga --no-pager | tail -30"
                    )
                )
                raise
            pid = in_box("systemctl show -p MainPID --value hoga")
            status = in_box(f"grep -E '^(Uid|CapEff|NoNewPrivs)' /proc/{pid}/status")
            user = in_box(f"id -un $(stat -c %u /proc/{pid})")
            mounts = dict(
                line.split(" ", 1)
                for line in in_box(
                    f'awk \'$5=="/" || $5=="/var/lib/hoga" {{print $5, $6}}\' /proc/{pid}/mountinfo'
                ).splitlines()
            )
            problems = []
            if user != "hoga":
                problems.append(f"runs as {user}")
            if "NoNewPrivs:\t1" not in status or "CapEff:\t0000000000000000" not in status:
                problems.append(f"privileges: {status}")
            if not mounts.get("/", "").startswith("ro") or not mounts.get(
                "/var/lib/hoga", ""
            ).startswith("rw"):
                problems.append(f"mounts: {mounts}")
            if problems:
                raise DeployError("the sandbox does not hold: " + "; ".join(problems))
            t0 = time.monotonic()
            in_box("systemctl stop hoga")
            stopped = time.monotonic() - t0
            result = in_box("systemctl show -p Result -p ExecMainStatus --value hoga").split()
            if result != ["success", "0"]:
                raise DeployError(f"systemctl stop hoga: {result}")
            print(
                f"    user hoga, no capabilities, NoNewPrivs, / read-only, data dir writable; "
                f"systemctl stop in {stopped:.1f} s (success, exit 0)",
                flush=True,
            )
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@step("systemd unit: systemd-analyze verify deploy/hoga.service")
def verify_unit() -> None:
    """``systemd-analyze verify`` checks the unit's syntax, every directive and that its
    executable exists; the executable is provided in a scratch root directory."""
    if shutil.which("systemd-analyze") is None:
        raise DeployError("systemd-analyze is missing (apt-get install systemd)")
    with tempfile.TemporaryDirectory(prefix="hoga-unit-") as tmp:
        root = Path(tmp)
        unit_dir = root / "etc" / "systemd" / "system"
        unit_dir.mkdir(parents=True)
        # The targets and units it refers to (network-online.target, ...) from this machine.
        shutil.copytree(
            "/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True
        )
        shutil.copy(DEPLOY / "hoga.service", unit_dir / "hoga.service")
        exe = root / "opt" / "hoga" / "bin" / "hoga"
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
        res = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", "/etc/systemd/system/hoga.service"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        out = (res.stdout + res.stderr).strip()
        if res.returncode != 0 or "hoga.service" in out:
            raise DeployError(f"systemd-analyze verify found problems:\n{out}")
        print(f"    clean{': ' + out if out else ''}", flush=True)
        # The sandbox, scored by systemd itself (0 = locked down, 10 = exposed).
        res = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", f"--root={root}", "hoga.service"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        found = re.search(r"Overall exposure level for hoga.service: ([\d.]+)", res.stdout)
        if found is None:
            raise DeployError(f"systemd-analyze security gave no score:\n{res.stdout}{res.stderr}")
        if float(found.group(1)) > 3.0:
            raise DeployError(f"the unit's exposure is {found.group(1)} (> 3.0):\n{res.stdout}")
        print(f"    systemd-analyze security: exposure {found.group(1)}", flush=True)


@step("Caddyfile: caddy validate deploy/Caddyfile")
def validate_caddyfile() -> None:
    if shutil.which("caddy") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sh("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "caddy",
           env=env, quiet=True)  # fmt: skip
    res = subprocess.run(
        ["caddy", "validate", "--adapter", "caddyfile", "--config", str(DEPLOY / "Caddyfile")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        raise DeployError(f"caddy validate:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    print("    valid", flush=True)


def _compose() -> list[str]:
    if (
        subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sh("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "docker-compose",
           env=env, quiet=True)  # fmt: skip
    return ["docker-compose"]


@step("compose.yaml: docker compose config (with the example env files)")
def validate_compose() -> None:
    """The file parses, every variable it needs is in compose.env.example, and the files it
    mounts exist. (Running it needs the postgres:16 image, which no registry here provides.)"""
    with tempfile.TemporaryDirectory(prefix="hoga-compose-") as tmp:
        d = Path(tmp)
        shutil.copy(DEPLOY / "compose.yaml", d / "compose.yaml")
        shutil.copytree(DEPLOY / "postgres", d / "postgres")
        shutil.copy(DEPLOY / "compose.env.example", d / ".env")
        shutil.copy(DEPLOY / "hoga.env.example", d / "hoga.env")
        out = sh(*_compose(), "-f", d / "compose.yaml", "config", quiet=True, cwd=d)
        for needed in (
            "init-roles.sh",
            "roles.sql",
            "HOGA_DATABASE_WAIT",
            "HOGA_DATABASE_SYSTEM_URL",
            "HOGA_TRUSTED_PROXIES",
            "hoga_owner",
            "hoga_system",
        ):
            if needed not in out:
                raise DeployError(f"compose config lacks {needed!r}:\n{out}")
    print("    valid", flush=True)
