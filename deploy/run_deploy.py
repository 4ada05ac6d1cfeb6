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
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from deploy_checks import (
    Container,
    Database,
    database_env,
    exercise,
    restart_keeps_order,
    run_unit_under_systemd,
    validate_caddyfile,
    validate_compose,
    verify_unit,
)
from deploy_images import (
    build_image,
    ensure_base_image,
    ensure_docker,
    stop_dockerd,
    wheelhouse,
    write_context,
)
from deploy_shell import BASE_IMAGE, CACHE, IMAGE, DeployError

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
