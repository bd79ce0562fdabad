"""Each plugin distribution (and the plugin template) builds, installs alone beside the gateway
core in a fresh virtual environment, and passes its own tests there.

What a plugin author or an operator does, in a temporary directory: build the plugin and the core
(from this checkout) as wheels, make a fresh venv, install both plus the plugin's `test` dependency
group, and run the plugin's tests. Third-party versions are pinned to this repository's uv.lock (as
constraints), so the run is reproducible and uses the uv cache; `UV_CACHE_DIR` passes through.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml")) + [REPO / "contrib" / "plugin-template"]

# Variables of this (outer) test run that must not leak into the isolated one.
_DROP = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
         "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID")


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is required to test isolated installs; it is not on PATH")
    return uv


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(args)} did not finish within {timeout:.0f} s\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    return proc


@pytest.fixture(scope="module")
def core_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The core built once as a wheel (a build is never served from uv's cache), and the pins."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    out = tmp_path_factory.mktemp("core")
    _run([_uv(), "build", "--quiet", "--wheel", "--out-dir", str(out), str(REPO)], cwd=out, env=env, timeout=300)
    constraints = out / "constraints.txt"
    _run([_uv(), "export", "--quiet", "--frozen", "--no-hashes", "--no-emit-workspace", "--no-emit-local",
          "--all-groups", "--output-file", str(constraints)], cwd=REPO, env=env, timeout=120)
    (wheel,) = out.glob("gateway-*.whl")
    return wheel, constraints


@pytest.mark.parametrize("source", DISTRIBUTIONS, ids=lambda p: p.name)
def test_installs_alone_and_passes_its_own_tests(source: Path, tmp_path: Path, core_wheel: tuple[Path, Path]) -> None:
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    entry_points = project.get("entry-points", {}).get("gateway", {})
    assert entry_points, f"{source} declares no entry point in the 'gateway' group"

    plugin = tmp_path / source.name  # a copy, so nothing of the checkout (src/, caches) is importable
    shutil.copytree(source, plugin, ignore=shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", ".venv", "dist", "build", "*.egg-info", "*.db"))
    dist = tmp_path / "dist"
    venv = tmp_path / "venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([uv, "build", "--quiet", "--wheel", "--out-dir", str(dist), str(plugin)], cwd=tmp_path, env=env, timeout=300)
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path, env=env, timeout=120)
    (wheel,) = dist.glob("*.whl")
    core, constraints = core_wheel
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--constraints", str(constraints),
          str(core), str(wheel), "--group", f"{plugin / 'pyproject.toml'}:test"], cwd=tmp_path, env=env, timeout=300)

    # Isolation: the core and the plugin come from the venv, and its entry points are registered there.
    names = sorted(entry_points)
    probe = _run([str(python), "-c",
                  "import gateway, sys; from importlib.metadata import entry_points; "
                  "eps = {e.name: e.value for e in entry_points(group='gateway')}; "
                  f"print(gateway.__file__); print(sorted(n for n in eps if n in {names!r}))"],
                 cwd=tmp_path, env=env, timeout=60)
    core_file, found = probe.stdout.splitlines()
    assert Path(core_file).is_relative_to(venv), probe.stdout
    assert found == repr(names), probe.stdout

    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=plugin, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{source.name}'s tests failed in isolation (exit {proc.returncode}):\n{out}"
    assert re.search(r"\b\d+ passed\b", out), out
    assert not re.search(r"\b\d+ (failed|errors?)\b", out), out


def test_use_aws_kms_without_its_plugin_stops_start_up_naming_the_distribution(
        tmp_path: Path, core_wheel: tuple[Path, Path]) -> None:
    """The core installed alone, as an operator would: `USE_AWS_KMS=True` must not be ignored (an
    encrypted DATABASE_URL would silently fall back to a local SQLite file). This is the one place
    where no aws_kms entry point exists: the workspace's environment has every plugin installed."""
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if k not in _DROP and k not in ("DATABASE_URL", "GATEWAY_CONFIG")}
    venv = tmp_path / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path, env=env, timeout=120)
    core, constraints = core_wheel
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--constraints", str(constraints), str(core)],
         cwd=tmp_path, env=env, timeout=300)
    gateway_bin = str(python.parent / "gateway")
    config = tmp_path / "config.yaml"
    config.write_text("model_list:\n  - model_name: m\n"
                      "    litellm_params: {model: openai/m, api_base: http://127.0.0.1:9}\n")

    for switch in ("True", "1"):  # the seed's value, and the plugin's other spelling of "on"
        seed = {**env, "USE_AWS_KMS": switch, "LITELLM_SECRET_AWS_KMS_DATABASE_URL": "AQICAHexample"}
        proc = subprocess.run([gateway_bin, "--config", str(config), "--host", "127.0.0.1", "--port", "0"],
                              cwd=tmp_path, env=seed, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (f"gateway: error: USE_AWS_KMS={switch} needs plugin 'aws_kms', which is not "
                                       "installed; install it with: pip install gateway-plugin-aws-kms")
    assert not (tmp_path / "gateway.db").exists()

    # Switched off, nothing is needed: the core alone starts (and has no plugin at all).
    off = _run([gateway_bin, "plugins", "--config", str(config), "--json"], cwd=tmp_path,
               env={**env, "USE_AWS_KMS": "False"}, timeout=60)
    assert json.loads(off.stdout)["installed"] == []
