"""The base images of docker-compose.yml, or stand-ins for them built from Debian packages.

`docker compose up` needs `python:3.11-slim` (to build the services), `mongo`, `rabbitmq` and,
with profile `s3`, SeaweedFS, all from Docker Hub. Where they can be pulled they are used as they
are. Where no registry can be reached (these development machines, many corporate build
hosts) this builds stand-ins that behave alike for imgpipe:

- python: Debian bookworm's Python 3.11 with pip, from `mmdebstrap`, `python3` and `pip` in
  /usr/local/bin as in the official image;
- rabbitmq: Debian's rabbitmq-server with the management plugin, guest allowed from other hosts;
- mongo: SecantusDB (MongoDB wire protocol on WiredTiger) and a `mongosh` for the healthcheck;
- s3: moto's S3 server.

Each stand-in is tagged with a hash of its recipe and reused while the recipe is unchanged
(label org.imgpipe.standin). deploy/standins/compose.yml puts them in place of the real images.

    python -m imgpipe_dev.standins ensure   # prints the IMGPIPE_*_IMAGE variables to export
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from imgpipe_dev.docker_engine import docker_cli, ensure_docker
from imgpipe_dev.infra import as_root

REPO = Path(__file__).resolve().parents[3]
STANDINS = REPO / "deploy" / "standins"
LABEL = "org.imgpipe.standin"
SUITE = "bookworm"
# The host's CA bundle, which includes a TLS-inspecting proxy's CA where there is one; handed
# to builds as the `proxy-ca` secret (see deploy/docker/Dockerfile).
DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Smaller images: no documentation, manual pages or translations.
_SLIM = [f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")] + [
    "--dpkgopt=path-include=/usr/share/doc/*/copyright"
]


@dataclass(frozen=True)
class BaseImages:
    """The images a stack runs on; `standins` when they are the stand-ins."""

    python: str
    mongo: str
    rabbitmq: str
    s3: str
    standins: bool

    def env(self) -> dict[str, str]:
        """The variables deploy/standins/compose.yml (and the tests' compose file) read."""
        return {
            "IMGPIPE_PYTHON_IMAGE": self.python,
            "IMGPIPE_MONGO_IMAGE": self.mongo,
            "IMGPIPE_RABBITMQ_IMAGE": self.rabbitmq,
            "IMGPIPE_S3_IMAGE": self.s3,
        }


REAL = BaseImages(
    python="python:3.11-slim",
    mongo="mongo:8",
    rabbitmq="rabbitmq:4-management",
    s3="chrislusf/seaweedfs:latest",
    standins=False,
)


@dataclass(frozen=True)
class Debootstrapped:
    """A stand-in made by mmdebstrap and `docker import`."""

    name: str
    packages: tuple[str, ...]
    hooks: tuple[str, ...]  # shell, with "$1" the new root (mmdebstrap --customize-hook)
    changes: tuple[str, ...]  # Dockerfile instructions for `docker import --change`

    def tag(self) -> str:
        recipe = repr((SUITE, self.packages, self.hooks, self.changes, _SLIM))
        return f"imgpipe-standin/{self.name}:{_digest(recipe)}"


@dataclass(frozen=True)
class Built:
    """A stand-in built FROM the python stand-in with a Dockerfile in deploy/standins/."""

    name: str
    dockerfile: str
    args: tuple[tuple[str, str], ...]
    files: tuple[str, ...] = ()  # what the Dockerfile copies from deploy/standins/

    def tag(self, base: str) -> str:
        contents = b"".join((STANDINS / f).read_bytes() for f in (self.dockerfile, *self.files))
        recipe = repr((base, self.args)) + hashlib.sha256(contents).hexdigest()
        return f"imgpipe-standin/{self.name}:{_digest(recipe)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _locked(name: str) -> str:
    """The version uv.lock pins for package `name`."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    for package in lock["package"]:
        if package["name"] == name:
            version: str = package["version"]
            return version
    raise LookupError(f"{name} is not in uv.lock")


PYTHON = Debootstrapped(
    name="python",
    packages=("python3", "python3-venv", "python3-pip", "ca-certificates"),
    hooks=(
        # bookworm's pip refuses to install outside a venv (PEP 668); an image is its own
        # environment, as in the official image.
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        'ln -s /usr/bin/python3 "$1/usr/local/bin/python3"',
        'ln -s /usr/bin/python3 "$1/usr/local/bin/python"',
        'ln -s /usr/bin/pip3 "$1/usr/local/bin/pip"',
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    ),
    changes=(f"ENV {PATH_ENV}", "ENV LANG=C.UTF-8", 'CMD ["python3"]'),
)

RABBITMQ = Debootstrapped(
    name="rabbitmq",
    packages=("rabbitmq-server",),
    hooks=(
        'chroot "$1" rabbitmq-plugins --offline enable rabbitmq_management',
        # The official image lets guest connect from other containers; so does this one.
        "printf 'loopback_users = none\\n' > \"$1/etc/rabbitmq/rabbitmq.conf\"",
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    ),
    changes=(
        f"ENV {PATH_ENV}",
        "ENV LANG=C.UTF-8",
        "ENV HOME=/var/lib/rabbitmq",
        "ENV RABBITMQ_LOGS=-",
        "WORKDIR /var/lib/rabbitmq",
        "USER rabbitmq",
        'CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]',
    ),
)


def _mongo() -> Built:
    args = (("SECANTUSDB_VERSION", _locked("secantusdb")), ("PYMONGO_VERSION", _locked("pymongo")))
    return Built("mongo", "mongo.Dockerfile", args, files=("mongosh",))


def _s3() -> Built:
    return Built("s3", "s3.Dockerfile", (("MOTO_VERSION", _locked("moto")),))


def image_exists(tag: str) -> bool:
    command = [docker_cli(), "image", "inspect", "--format", "{{.Id}}", tag]
    return subprocess.run(command, capture_output=True).returncode == 0


def _can_pull(tag: str) -> bool:
    if image_exists(tag):
        return True
    command = [docker_cli(), "pull", "--quiet", tag]
    try:
        return subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _apt_sources() -> list[str]:
    """The machine's own apt sources as mmdebstrap's mirror (its proxy or mirror settings
    included); mmdebstrap's default mirror where there are none."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        if Path(path).is_file() and Path(path).stat().st_size > 0:
            return [path]
    return []


def _ensure_mmdebstrap() -> None:
    if subprocess.run(["sh", "-c", "command -v mmdebstrap"], capture_output=True).returncode == 0:
        return
    print("installing Debian's mmdebstrap (for the stand-in images)", file=sys.stderr, flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = as_root(["apt-get", "install", "-y", "-q", "--no-install-recommends", "mmdebstrap"])
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(as_root(["apt-get", "update", "-q"]), check=True, env=env)
        subprocess.run(install, check=True, env=env)


def _debootstrap(recipe: Debootstrapped) -> str:
    tag = recipe.tag()
    if image_exists(tag):
        return tag
    print(f"building stand-in {tag} from Debian packages", file=sys.stderr, flush=True)
    bootstrap = [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={','.join(recipe.packages)}",
        *_SLIM,
        *(f"--customize-hook={hook}" for hook in recipe.hooks),
        SUITE,
        "-",
        *_apt_sources(),
    ]
    changes = [*recipe.changes, f"LABEL {LABEL}={recipe.name}"]
    import_ = [docker_cli(), "import", *(f"--change={c}" for c in changes), "-", tag]
    # mmdebstrap writes the tarball to stdout; the pipe keeps it off the disk.
    pipeline = f"set -o pipefail; {shlex.join(as_root(bootstrap))} | {shlex.join(import_)}"
    subprocess.run(["bash", "-c", pipeline], check=True, env=_clean_env(), stdout=sys.stderr)
    return tag


def _clean_env() -> dict[str, str]:
    # The host's pip settings (local wheel folders, index URLs) mean nothing inside an image.
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}


def proxy_ca() -> Path | None:
    """The CA bundle passed to builds: IMGPIPE_PROXY_CA, else the host's bundle."""
    path = Path(os.environ.get("IMGPIPE_PROXY_CA", DEFAULT_CA))
    return path if path.is_file() else None


def _build(recipe: Built, base: str) -> str:
    tag = recipe.tag(base)
    if image_exists(tag):
        return tag
    print(f"building stand-in {tag}", file=sys.stderr, flush=True)
    ca = proxy_ca()
    command = [
        docker_cli(),
        "build",
        "--quiet",
        "--network=host",
        *([f"--secret=id=proxy-ca,src={ca}"] if ca else []),
        f"--build-arg=BASE={base}",
        *(f"--build-arg={k}={v}" for k, v in recipe.args),
        f"--label={LABEL}={recipe.name}",
        f"--file={STANDINS / recipe.dockerfile}",
        f"--tag={tag}",
        str(STANDINS),
    ]
    env = _clean_env() | {"DOCKER_BUILDKIT": "1"}
    subprocess.run(command, check=True, env=env, stdout=sys.stderr)
    return tag


def ensure_standins() -> BaseImages:
    """Build the stand-ins that are missing (the two from Debian packages side by side, then the
    two built on the python one); return all four tags."""
    mongo, s3 = _mongo(), _s3()
    if not all(image_exists(r.tag()) for r in (PYTHON, RABBITMQ)):
        _ensure_mmdebstrap()
    with ThreadPoolExecutor(2) as pool:
        rabbitmq_tag = pool.submit(_debootstrap, RABBITMQ)
        python = _debootstrap(PYTHON)
        built = [pool.submit(_build, recipe, python) for recipe in (mongo, s3)]
        return BaseImages(
            python=python,
            mongo=built[0].result(),
            rabbitmq=rabbitmq_tag.result(),
            s3=built[1].result(),
            standins=True,
        )


def ensure_base_images() -> BaseImages:
    """The real images where all of them can be had, else the stand-ins."""
    ensure_docker()
    real = (REAL.python, REAL.mongo, REAL.rabbitmq, REAL.s3)
    if all(_can_pull(tag) for tag in real):
        return REAL
    return ensure_standins()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ensure"])
    parser.parse_args()
    images = ensure_base_images()
    for name, value in images.env().items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
