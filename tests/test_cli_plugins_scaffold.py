"""`gateway plugins new NAME` and `gateway plugins dev PATH`.

`new` copies contrib/plugin-template with every name changed: the plugin it writes builds, installs
alone beside the core (as wheels, in a fresh virtual environment) and passes its own tests there.
It refuses bad names and existing folders with one line. `dev` installs a plugin folder, editable,
into the environment of the `gateway` command that runs it: here a fresh venv with the core's
wheel, never the environment running these tests.
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

from gateway.core.cli import main

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "contrib" / "plugin-template"
_DROP = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
         "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID")
LEFTOVERS = re.compile(r"gateway[-_]plugin[-_]example|example_header_guard|HeaderGuard|\bexample_|template-only")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plugins", *args])
    out, err = capsys.readouterr()
    return code, out, err


def files_of(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_new_outside_the_workspace_writes_a_renamed_plugin(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "new", "reply-stamp")
    assert (code, err) == (0, "")
    folder = tmp_path / "gateway-plugin-reply-stamp"
    assert out.splitlines()[0] == ("created gateway-plugin-reply-stamp: distribution gateway-plugin-reply-stamp, "
                                   "module gateway_plugin_reply_stamp, entry point reply_stamp (class ReplyStamp)")
    assert "gateway plugins dev gateway-plugin-reply-stamp" in out
    assert files_of(folder) == ["README.md", "pyproject.toml", "src/gateway_plugin_reply_stamp/__init__.py",
                                "src/gateway_plugin_reply_stamp/config.py", "src/gateway_plugin_reply_stamp/handler.py",
                                "tests/test_reply_stamp.py"]
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert project["name"] == "gateway-plugin-reply-stamp"
    assert project["readme"] == "README.md"  # the scaffold has one, so it names it
    assert project["entry-points"]["gateway"] == {"reply_stamp": "gateway_plugin_reply_stamp:ReplyStamp"}
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not LEFTOVERS.search(text), (path, LEFTOVERS.search(text))
            if path.suffix == ".py":
                compile(text, str(path), "exec")
    handler = (folder / "src/gateway_plugin_reply_stamp/handler.py").read_text()
    assert 'class ReplyStamp(Plugin):' in handler and 'name = "reply_stamp"' in handler
    assert "reply_stamp_required_headers" in (folder / "src/gateway_plugin_reply_stamp/config.py").read_text()


def test_new_inside_the_workspace_goes_to_plugins(tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "gateway"\nversion = "0"\n'
                                             '[tool.uv.workspace]\nmembers = ["plugins/*"]\n')
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "docs" / "deep")  # anywhere below the workspace root
    code, out, err = run_cli(capsys, "new", "word_limit")
    assert (code, err) == (0, "")
    folder = tmp_path / "plugins" / "word-limit"
    assert (folder / "src" / "gateway_plugin_word_limit" / "handler.py").is_file()
    assert "uv sync --all-packages --all-groups" in out
    assert tomllib.loads((folder / "pyproject.toml").read_text())["project"]["entry-points"]["gateway"] == {
        "word_limit": "gateway_plugin_word_limit:WordLimit"}
    # --dir wins, anywhere
    code, out, err = run_cli(capsys, "new", "x2", "--dir", str(tmp_path / "elsewhere" / "mine"))
    assert code == 0 and (tmp_path / "elsewhere" / "mine" / "src" / "gateway_plugin_x2" / "__init__.py").is_file()
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == ["mine"]  # no staging folder left


@pytest.mark.parametrize("name", ["", "Email", "email mask", "1up", "x-", "a--b", "a-_b", "é", "a.b",
                                  "x" * 41, "../evil"])
def test_new_refuses_a_bad_name_with_one_line(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "new", name)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith(f"gateway: error: invalid plugin name {name!r}: "), err
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_an_existing_folder_and_an_installed_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gateway-plugin-taken").mkdir()
    (tmp_path / "gateway-plugin-taken" / "keep.txt").write_text("mine")
    code, out, err = run_cli(capsys, "new", "taken")
    assert (code, out) == (2, "")
    assert err == "gateway: error: gateway-plugin-taken already exists; refusing to overwrite it (pick another name or --dir)\n"
    assert files_of(tmp_path / "gateway-plugin-taken") == ["keep.txt"]
    code, out, err = run_cli(capsys, "new", "hide-secrets")  # installed in this environment
    assert code == 2 and err == ("gateway: error: a plugin named 'hide_secrets' is already installed "
                                 "(gateway-plugin-hide-secrets); choose another name\n")
    code, out, err = run_cli(capsys, "new", "ok", "--template", str(tmp_path / "nothing"))
    assert code == 2 and err == f"gateway: error: no plugin template at {tmp_path / 'nothing'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway-plugin-taken"]


def test_dev_refuses_what_is_not_a_plugin(tmp_path, capsys):
    code, _, err = run_cli(capsys, "dev", str(tmp_path))
    assert code == 2 and err == f"gateway: error: {tmp_path} has no pyproject.toml\n"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "not-a-plugin"\nversion = "1"\n')
    code, _, err = run_cli(capsys, "dev", str(tmp_path))
    assert code == 2 and err == ("gateway: error: not-a-plugin declares no entry point in the 'gateway' group "
                                 "([project.entry-points.gateway])\n")


def test_the_plugins_listing_still_works(tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text("model_list: []\n")
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path / 'db.sqlite3'}")
    code, out, _ = run_cli(capsys, "--config", str(config), "--json")
    assert code == 0 and "installed" in json.loads(out)


# -- builds, installs and tests, in fresh environments ----------------------------------------------


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is required for these tests; it is not on PATH")
    return uv


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _DROP and k not in ("DATABASE_URL", "GATEWAY_CONFIG")}


def _run(args: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The core as a wheel, and this repository's pins (so installs come from uv's cache)."""
    out = tmp_path_factory.mktemp("core")
    _run([_uv(), "build", "--quiet", "--wheel", "--out-dir", str(out), str(REPO)], out)
    constraints = out / "constraints.txt"
    _run([_uv(), "export", "--quiet", "--frozen", "--no-hashes", "--no-emit-workspace", "--no-emit-local",
          "--all-groups", "--output-file", str(constraints)], REPO, timeout=120)
    (wheel,) = out.glob("gateway-*.whl")
    return wheel, constraints


def fresh_venv(where: Path, core: tuple[Path, Path], *more: str) -> Path:
    uv = _uv()
    venv = where / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], where, timeout=120)
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--constraints", str(core[1]), str(core[0]), *more],
         where)
    return python


def test_the_template_builds_without_its_readme(tmp_path):
    copy = tmp_path / "bare"
    shutil.copytree(TEMPLATE, copy, ignore=shutil.ignore_patterns("README.md", "__pycache__", ".pytest_cache"))
    _run([_uv(), "build", "--quiet", "--wheel", "--out-dir", str(tmp_path / "dist"), str(copy)], tmp_path)
    assert list((tmp_path / "dist").glob("gateway_plugin_example-0.1.0-*.whl"))


def test_a_new_plugin_builds_installs_alone_and_passes_its_own_tests(tmp_path, core):
    _run([sys.executable, "-m", "gateway.core.cli", "plugins", "new", "reply-stamp"], tmp_path)
    plugin = tmp_path / "gateway-plugin-reply-stamp"
    _run([_uv(), "build", "--quiet", "--out-dir", str(tmp_path / "dist"), str(plugin)], tmp_path)  # sdist + wheel
    (wheel,) = (tmp_path / "dist").glob("gateway_plugin_reply_stamp-0.1.0-py3-none-any.whl")
    python = fresh_venv(tmp_path, core, str(wheel), "--group", f"{plugin / 'pyproject.toml'}:test")
    listed = _run([str(python.parent / "gateway"), "plugins", "--json"], tmp_path,
                  env={**_env(), "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"})
    (row,) = json.loads(listed.stdout)["installed"]
    assert (row["name"], row["distribution"], row["version"]) == ("reply_stamp", "gateway-plugin-reply-stamp", "0.1.0")
    # its own tests, against the installed wheel (a copy without src/, so nothing is imported from it)
    shutil.rmtree(plugin / "src")
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=plugin, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and re.search(r"\b\d+ passed\b", proc.stdout), proc.stdout + proc.stderr


def test_dev_installs_a_plugin_editable_into_the_gateways_environment(tmp_path, core):
    python = fresh_venv(tmp_path, core)
    gateway_bin = str(python.parent / "gateway")
    env = {**_env(), "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"}
    # the wheel ships the template (gateway/plugin_template): `new` needs no source checkout
    proc = subprocess.run([gateway_bin, "plugins", "new", "echo-guard"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("created gateway-plugin-echo-guard"), proc.stderr
    plugin = tmp_path / "gateway-plugin-echo-guard"
    proc = _run([gateway_bin, "plugins", "dev", str(plugin)], tmp_path, env=env)
    assert f"installed gateway-plugin-echo-guard (editable, from {plugin}) into {python.parent.parent}; " \
           "plugins: echo_guard" in proc.stdout
    assert "uv sync --inexact" in proc.stdout
    (row,) = json.loads(_run([gateway_bin, "plugins", "--json"], tmp_path, env=env).stdout)["installed"]
    assert row["name"] == "echo_guard"
    # editable: the environment imports the plugin from its folder, so an edit needs no reinstall
    where = _run([str(python), "-c", "import gateway_plugin_echo_guard as m; print(m.__file__)"], tmp_path).stdout
    assert Path(where.strip()).is_relative_to(plugin)
