"""Shared pieces of the deployment test: paths and names, running commands, waiting, HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
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
    return str(res.stdout)


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
