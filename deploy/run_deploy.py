#!/usr/bin/env python3
"""Build the hoga container image offline and prove it runs: ``make test-deploy``.

    python3 deploy/run_deploy.py test            # the deployment test (what CI runs)
    python3 deploy/run_deploy.py build           # only build the image (HOGA_IMAGE, hoga:local)
    python3 deploy/run_deploy.py context DIR     # only write a build context (source + wheels)

The test, step by step (each prints its time):

1. Docker: installs ``docker.io`` with apt if ``dockerd`` is missing, starts ``dockerd`` if it
   does not answer (and stops it again at the end).
   deploy/compose.yaml is checked with ``docker compose config`` (or docker-compose from apt)
   against the example env files - it is not run: no registry here serves postgres:16.
2. Base image ``hoga-base:bookworm`` (Debian bookworm with python3): made with ``debootstrap``
   from the Debian mirror this machine's apt uses, then ``docker import``; kept for later runs.
   No image registry is needed.
3. Wheelhouse: every runtime dependency as a wheel, built on the host with pip (cached under
   ``~/.cache/hoga-deploy`` by the hash of pyproject.toml + constraints.txt).
4. ``docker build --network none`` of deploy/Dockerfile: the image builds with no network.
5. PostgreSQL: a fresh database and unique roles on the local server, made by
   deploy/postgres/init-roles.sh running deploy/postgres/roles.sql - the same files compose uses.
6. The container runs with ``--network host`` against it: ``/ready`` answers 200, the health
   check reports healthy, the process is not root; the admin signs in, places a paper order and
   sees it filled; ``docker stop`` ends it with exit 0 (SIGTERM, no SIGKILL) and after
   ``docker start`` the order is still there, filled.
7. The systemd unit (deploy/hoga.service) runs under systemd as PID 1 in a container (Debian
   with systemd, /opt/hoga from the image, a database of its own): started as user ``hoga``,
   its sandbox checked in the running process (no capabilities, NoNewPrivs, / read-only, the
   data dir writable), ``systemctl stop`` clean (success, exit 0). ``systemd-analyze verify``
   also checks it in a scratch root with this machine's units, and ``systemd-analyze
   security`` scores the sandbox (above 3.0, systemd's "OK" band, fails). The Caddyfile is
   checked with ``caddy validate`` (caddy is installed with apt if missing).

Everything it made (container, volume, database, roles) is removed at the end, pass or fail.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BASE_IMAGE = os.environ.get("HOGA_DEPLOY_BASE_IMAGE", "hoga-base:bookworm")
IMAGE = os.environ.get("HOGA_IMAGE", "hoga:local")
CACHE = Path(os.environ.get("HOGA_DEPLOY_CACHE", Path.home() / ".cache" / "hoga-deploy"))
PG_HOST = os.environ.get("HOGA_DEPLOY_PG_HOST", "127.0.0.1")
PG_SUPERUSER = os.environ.get("HOGA_DEPLOY_PG_USER", "postgres")
DOCKER_SOCK = Path("/var/run/docker.sock")
T = TypeVar("T")


class DeployError(Exception):
    """A step failed; the message says which and why."""


def step(title: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        def run(*args: Any, **kwargs: Any) -> T:
            t0 = time.monotonic()
            print(f"==> {title}", flush=True)
            result = fn(*args, **kwargs)
            print(f"    done in {time.monotonic() - t0:.1f} s", flush=True)
            return result

        return run

    return wrap


def sh(*cmd: str | Path, check: bool = True, quiet: bool = False, **kw: Any) -> str:
    """Run a command; its output is returned (and shown unless ``quiet``)."""
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kw)
    if check and res.returncode != 0:
        raise DeployError(
            f"{' '.join(str(c) for c in cmd)} failed ({res.returncode}):\n"
            f"{res.stdout[-3000:]}{res.stderr[-3000:]}"
        )
    if not quiet and res.stdout.strip():
        print("    " + res.stdout.strip().replace("\n", "\n    ")[-2000:], flush=True)
    return res.stdout


def wait_for(what: str, check: Callable[[], T | None], within: float) -> T:
    """Poll ``check`` until it returns something truthy, at most ``within`` seconds."""
    deadline = time.monotonic() + within
    pause = 0.2
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except (OSError, urllib.error.URLError, DeployError, KeyError, ValueError) as e:
            last = e
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)
    raise DeployError(f"timed out after {within:.0f} s waiting for {what} (last error: {last})")


# ------------------------------------------------------------------ docker


def docker_answers() -> bool:
    return (
        subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode
        == 0
    )


@step("docker: installed and running")
def ensure_docker() -> subprocess.Popen[bytes] | None:
    """Install docker.io if needed and start dockerd if it does not answer; returns the dockerd
    process this run started (to stop at the end) or None."""
    if shutil.which("dockerd") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Another job may be using apt: wait for its lock instead of failing.
        sh("apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq", env=env, quiet=True)
        sh(
            "apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq",
            "docker.io", "debootstrap", env=env, quiet=True,
        )  # fmt: skip
    if docker_answers():
        return None
    log = open(CACHE / "dockerd.log", "ab")  # noqa: SIM115 - the daemon keeps it open
    proc = subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    wait_for("dockerd", docker_answers, 60)
    print(f"    started dockerd (pid {proc.pid}); it is stopped again at the end", flush=True)
    return proc


def stop_dockerd(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    print(f"==> stopped dockerd (pid {proc.pid})", flush=True)


def image_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["docker", "image", "inspect", name], capture_output=True, check=False
        ).returncode
        == 0
    )


def apt_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 or one-line sources)."""
    for path in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            words = line.split()
            if line.startswith("URIs:") and "security" not in line:
                return words[1]
            if line.startswith("deb ") and "security" not in line:
                return next(w for w in words[1:] if w.startswith(("http", "file", "ftp")))
    return "http://deb.debian.org/debian"


@step(f"base image {BASE_IMAGE} (debootstrap + docker import; kept between runs)")
def ensure_base_image() -> None:
    if image_exists(BASE_IMAGE):
        print("    cached", flush=True)
        return
    if shutil.which("debootstrap") is None:
        sh("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "debootstrap")
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="hoga-rootfs-", dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"    debootstrap bookworm from {mirror}", flush=True)
        sh(
            "debootstrap", "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates,tzdata",
            "bookworm", rootfs, mirror, quiet=True,
        )  # fmt: skip
        # Smaller image: no apt lists or caches; then one tar stream into docker import.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        sh(
            "docker", "import",
            "--change", 'ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
            "--change", 'CMD ["/bin/bash"]',
            "-", BASE_IMAGE, stdin=tar.stdout, quiet=True,
        )  # fmt: skip
        tar.wait()


# ------------------------------------------------------------------ build


def _hash_inputs() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()[:16]


@step("wheelhouse (host pip, cached)")
def wheelhouse() -> Path:
    """Every runtime dependency as a wheel for this Python, plus setuptools and wheel for the
    image's offline build of hoga itself."""
    dest = CACHE / f"wheelhouse-{_hash_inputs()}"
    if (dest / ".complete").exists():
        print(f"    cached: {dest}", flush=True)
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    sh(*pip, "wheel", "--quiet", "-c", ROOT / "constraints.txt", "-w", tmp, ROOT, quiet=True)
    for whl in tmp.glob("hoga-*.whl"):
        whl.unlink()  # the image builds its own from the source it is given
    sh(*pip, "download", "--quiet", "-d", tmp, "setuptools>=68", "wheel", quiet=True)
    (tmp / ".complete").touch()
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def write_context(dest: Path, wheels: Path) -> Path:
    """A minimal build context: the Dockerfile, the source tree and the wheelhouse."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY / "Dockerfile", dest / "Dockerfile")
    src = dest / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "src",
        src / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    shutil.rmtree(dest / "wheelhouse", ignore_errors=True)
    shutil.copytree(wheels, dest / "wheelhouse", copy_function=os.link)
    return dest


def _image_id(name: str) -> str | None:
    res = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    return res.stdout.strip() if res.returncode == 0 else None


@step(f"docker build {IMAGE} (no network)")
def build_image(wheels: Path) -> None:
    previous = _image_id(IMAGE)
    with tempfile.TemporaryDirectory(prefix="hoga-context-", dir=CACHE) as tmp:
        ctx = write_context(Path(tmp), wheels)
        sh(
            "docker", "build", "--network", "none", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "-t", IMAGE, ctx, quiet=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
    if previous and previous != _image_id(IMAGE):
        # The image this build replaced, now untagged: not kept (fails harmlessly if in use).
        subprocess.run(["docker", "rmi", previous], capture_output=True, check=False)
    size = sh("docker", "image", "inspect", "-f", "{{.Size}}", IMAGE, quiet=True).strip()
    print(f"    image size {int(size) / 1e6:.0f} MB", flush=True)


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


def hoga_settings() -> set[str]:
    """The settings of the hoga in this tree (the roles model differs between releases)."""
    sys.path.insert(0, str(ROOT / "src"))
    try:
        from hoga.config import Settings
    finally:
        sys.path.pop(0)
    return set(Settings.model_fields)


def database_env(db: Database) -> dict[str, str]:
    if "database_owner_url" in hoga_settings():
        # The server logs in as the app role; migrations as the owner.
        return {
            "HOGA_DATABASE_URL": db.url("app"),
            "HOGA_DATABASE_OWNER_URL": db.url("owner"),
        }
    return {"HOGA_DATABASE_URL": db.url("owner"), "HOGA_DATABASE_APP_ROLE": f"{db.name}_app"}


# ------------------------------------------------------------------ the container


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


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
        for needed in ("init-roles.sh", "roles.sql", "HOGA_DATABASE_WAIT", "hoga_owner"):
            if needed not in out:
                raise DeployError(f"compose config lacks {needed!r}:\n{out}")
    print("    valid", flush=True)


# ------------------------------------------------------------------ main


@contextlib.contextmanager
def docker_session() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    started = ensure_docker()
    try:
        yield
    finally:
        if started is not None:
            stop_dockerd(started)


def cmd_test() -> None:
    t0 = time.monotonic()
    with docker_session():
        validate_compose()
        ensure_base_image()
        build_image(wheelhouse())
        db = Database()
        container: Container | None = None
        try:
            db.create()
            admin_password = secrets.token_urlsafe(12)
            env = {
                **database_env(db),
                "HOGA_ADMIN_PASSWORD": admin_password,
                "HOGA_DATABASE_WAIT": "60",
                "HOGA_SIM_TICKS_PER_SECOND": "400",
            }
            container = Container(env)
            with tempfile.TemporaryDirectory(prefix="hoga-env-") as tmp:
                container.start(Path(tmp) / "hoga.env")
            try:
                order_id = exercise(container, admin_password)
                restart_keeps_order(container, admin_password, order_id)
            except DeployError:
                print(container.logs(), file=sys.stderr)
                raise
            container.remove()
            # A database of its own: the first one's vault names a key this data dir lacks.
            unit_db = Database()
            try:
                unit_db.create()
                run_unit_under_systemd(unit_db)
            finally:
                unit_db.drop()
        finally:
            if container is not None:
                container.remove()
            db.drop()
    verify_unit()
    validate_caddyfile()
    print(f"deployment test passed in {time.monotonic() - t0:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("test", help="build the image and run the deployment test")
    sub.add_parser("build", help=f"build the image {IMAGE}")
    ctx = sub.add_parser("context", help="write a build context for deploy/Dockerfile")
    ctx.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "test":
            cmd_test()
        elif args.cmd == "build":
            with docker_session():
                if BASE_IMAGE == "hoga-base:bookworm":
                    ensure_base_image()
                build_image(wheelhouse())
        else:
            CACHE.mkdir(parents=True, exist_ok=True)
            write_context(args.dir, wheelhouse())
            print(f"build context in {args.dir}: docker build -f {args.dir}/Dockerfile {args.dir}")
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
