"""deploy/Dockerfile: hadolint-clean, and the image the chart expects (user, entrypoint, ports).

Building it is `make image` (buildah, offline); running it is `make e2e-chart`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures.chart import CHART

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_is_what_the_chart_runs() -> None:
    instructions = _instructions()
    final = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    stage = dict(instructions[final:])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert stage["USER"] == f"{uid}:{values['podSecurityContext']['runAsGroup']}"
    assert stage["ENTRYPOINT"] == '["clair"]'  # the chart gives args only
    ports = {int(p) for p in stage["EXPOSE"].split()}
    assert ports == {values["service"]["port"], values["service"]["introspectionPort"]}
    # Multi-stage, the base a build argument.
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("${BASE_IMAGE}") for f in froms)
    assert instructions[0] == ("ARG", "BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm")
