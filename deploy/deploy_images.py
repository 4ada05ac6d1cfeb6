"""The images: dockerd, the debootstrap base image, the wheelhouse, the offline build."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy_shell import BASE_IMAGE, CACHE, DEPLOY, IMAGE, ROOT, sh, step, wait_for

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
