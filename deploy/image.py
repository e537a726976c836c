"""`make image`: build deploy/Dockerfile offline with buildah, on a debootstrapped Debian base.

No registry can be pulled from here, so the base image is made locally: debootstrap a minimal
Debian with its python3 and venv module (cached as a tarball under build/image/, and as the
image localhost/clair-base:<suite> in buildah's storage), then `buildah bud --isolation chroot`
the Dockerfile with BASE_IMAGE pointing at it. The build has no package index either: every
wheel is prepared beforehand in build/wheelhouse with the host's pip, for the same Python.

    python deploy/image.py [--tag clair-py:0.1.0] [--rebuild-base]

Standard library only, so that it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "image"
WHEELHOUSE = ROOT / "build" / "wheelhouse"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# What the Dockerfile's build stage needs to build this project's wheel without an index.
BUILD_REQUIREMENTS = ("setuptools>=68", "wheel")
SYSTEM_TOOLS = {"buildah": "buildah", "debootstrap": "debootstrap"}


def say(message: str) -> None:
    print(f"image: {message}", flush=True)


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    say("$ " + " ".join(args))
    return subprocess.run(args, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in SYSTEM_TOOLS.items() if shutil.which(tool) is None]
    if not missing and Path("/usr/sbin/debootstrap").exists():
        return
    missing = missing or ["debootstrap"]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"image: needs {' '.join(missing)}: apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-q"]
    run([*apt, "update"], env=env)
    run([*apt, "install", "-y", *missing], env=env)


def debian_mirror() -> str:
    """The mirror apt already uses (DEBIAN_MIRROR overrides): debootstrap needs one."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    sources = [*Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list")]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text()
        # deb822 stanzas ("URIs: ...") or one-line entries ("deb URI suite main").
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", text, re.M
        ):
            if not uri.rstrip("/").endswith(("-security", "security")):
                return str(uri)
    sys.exit("image: no Debian mirror in /etc/apt sources: set DEBIAN_MIRROR")


def image_exists(name: str) -> bool:
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", name], capture_output=True, check=False
    )
    return done.returncode == 0


def base_tarball() -> Path:
    """A minimal Debian root filesystem with python3, debootstrapped once and kept."""
    tarball = WORK / f"debian-{SUITE}-python3.tar"
    if tarball.exists():
        return tarball
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                debian_mirror(),
            ]
        )
        # What an image does not need: downloaded packages and package lists.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.rename(tarball)
    return tarball


def build_base(name: str, rebuild: bool) -> None:
    if image_exists(name) and not rebuild:
        say(f"base {name} already built")
        return
    tarball = base_tarball()
    with tempfile.TemporaryDirectory(dir=WORK) as context:
        os.link(tarball, Path(context) / "rootfs.tar")
        containerfile = Path(context) / "Containerfile"
        containerfile.write_text('FROM scratch\nADD rootfs.tar /\nCMD ["python3"]\n')
        run(
            [
                "buildah",
                "bud",
                "--isolation",
                "chroot",
                "-f",
                str(containerfile),
                "-t",
                name,
                context,
            ]
        )


def base_python(name: str) -> str:
    """`3.11` for the base image's python3, read without running a container."""
    done = run(["buildah", "from", "--pull-never", name], capture_output=True)
    container = done.stdout.strip()
    try:
        mount = run(["buildah", "mount", container], capture_output=True).stdout.strip()
        versions = sorted(p.name for p in (Path(mount) / "usr/lib").glob("python3.*"))
        if not versions:
            sys.exit(f"image: no python3 in {name}")
        return versions[-1].removeprefix("python")
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def prepare_wheels(python_version: str) -> None:
    """Every wheel the build stage needs, made here where PyPI is reachable."""
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if host != python_version:
        sys.exit(
            f"image: the base has Python {python_version} but this is {host}:"
            f" run with python{python_version} (wheels must match the image's Python)"
        )
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(WHEELHOUSE),
            str(ROOT),
            *BUILD_REQUIREMENTS,
        ]
    )
    # The project's own wheel is rebuilt from the sources inside the build.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    for stale in WHEELHOUSE.glob(project.replace("-", "_") + "-*.whl"):
        stale.unlink()


def image_id(name: str) -> str | None:
    done = subprocess.run(
        ["buildah", "images", "--quiet", "--no-trunc", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout.split() else None


def build_image(tag: str, base: str) -> None:
    previous = image_id(tag)
    run(
        [
            "buildah",
            "bud",
            "--isolation",
            "chroot",
            "--pull-never",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-f",
            str(ROOT / "deploy" / "Dockerfile"),
            "-t",
            tag,
            str(ROOT),
        ]
    )
    built = image_id(tag)
    if previous is not None and previous != built:
        # The tag moved: drop the image it named, or every rebuild leaves ~400 MB behind.
        subprocess.run(["buildah", "rmi", previous], capture_output=True, check=False)
    say(f"built {tag} ({built})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tag", default="clair-py:0.1.0")
    parser.add_argument("--base", default=f"localhost/clair-base:{SUITE}")
    parser.add_argument("--rebuild-base", action="store_true")
    args = parser.parse_args(argv)
    ensure_tools()
    build_base(args.base, args.rebuild_base)
    prepare_wheels(base_python(args.base))
    build_image(args.tag, args.base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
