"""The plugin template (contrib/plugin-template) builds, installs and passes its own tests in isolation.

What a plugin author does, in a temporary directory: copy the template, build it as a wheel, make a
fresh venv, install the gateway core (built from this checkout) plus the plugin wheel plus the
template's `test` dependency group, and run the template's tests there. Third-party versions are
pinned to this repository's uv.lock (as constraints), so the run is reproducible and uses the uv
cache; `UV_CACHE_DIR` passes through unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "contrib" / "plugin-template"

# Variables of this (outer) test run that must not leak into the isolated one.
_DROP = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
         "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID")


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is required to test the plugin template (https://docs.astral.sh/uv/); it is not on PATH")
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


def test_template_builds_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    uv = _uv()
    assert (TEMPLATE / "pyproject.toml").is_file(), f"no plugin template at {TEMPLATE}"
    env = {k: v for k, v in os.environ.items() if k not in _DROP}  # UV_CACHE_DIR included, unchanged

    plugin = tmp_path / "gateway-plugin-example"
    shutil.copytree(TEMPLATE, plugin, ignore=shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", ".venv", "dist", "build", "*.egg-info", "*.db"))
    dist = tmp_path / "dist"
    venv = tmp_path / "venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    constraints = tmp_path / "constraints.txt"

    # Build both distributions as wheels (a build is never served from uv's cache, so the core is
    # exactly this checkout), pin third-party versions to the lock, and make a fresh venv.
    _run([uv, "build", "--quiet", "--wheel", "--out-dir", str(dist), str(plugin)], cwd=tmp_path, env=env, timeout=300)
    _run([uv, "build", "--quiet", "--wheel", "--out-dir", str(dist), str(REPO)], cwd=tmp_path, env=env, timeout=300)
    _run([uv, "export", "--quiet", "--frozen", "--no-hashes", "--no-emit-workspace", "--no-emit-local",
          "--all-groups", "--output-file", str(constraints)], cwd=REPO, env=env, timeout=120)
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path, env=env, timeout=120)
    wheels = {w.name.split("-")[0]: w for w in dist.glob("*.whl")}
    assert set(wheels) == {"gateway", "gateway_plugin_example"}, sorted(dist.iterdir())

    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--constraints", str(constraints),
          str(wheels["gateway"]), str(wheels["gateway_plugin_example"]),
          "--group", f"{plugin / 'pyproject.toml'}:test"], cwd=tmp_path, env=env, timeout=300)

    # Isolation: both come from the venv's site-packages, and the entry point is registered there.
    probe = _run([str(python), "-c",
                  "import gateway, gateway_plugin_example as p; from importlib.metadata import entry_points; "
                  "print(gateway.__file__); print(p.__file__); "
                  "print([e.value for e in entry_points(group='gateway', name='example_header_guard')])"],
                 cwd=tmp_path, env=env, timeout=60)
    core_file, plugin_file, eps = probe.stdout.splitlines()
    assert Path(core_file).is_relative_to(venv) and Path(plugin_file).is_relative_to(venv), probe.stdout
    assert eps == "['gateway_plugin_example:HeaderGuard']", probe.stdout

    # The template's own tests, with the template's own pytest settings; src/ is not importable.
    proc = subprocess.run([str(python), "-m", "pytest", "-q"], cwd=plugin, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the template's tests failed (exit {proc.returncode}):\n{out}"
    assert re.search(r"\b\d+ passed\b", out), out
    assert not re.search(r"\b\d+ (failed|errors?|skipped)\b", out), out
