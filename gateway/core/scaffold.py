"""`gateway plugins new NAME` (a plugin from the template) and `gateway plugins dev PATH` (install
a plugin being written into the gateway's environment, editable)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import gateway


def _fail(message: str) -> int:
    print(f"gateway: error: {message}", file=sys.stderr)
    return 2


#: A plugin's short name: lower-case words joined by `-` or `_` (`email-mask`, `email_mask`).
PLUGIN_NAME = r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*"
#: What `plugins new` renames in the template, most specific first.
TEMPLATE_NAMES = ("gateway-plugin-example", "gateway_plugin_example", "example_header_guard", "HeaderGuard",
                  "test_example")
_SKIP = ("__pycache__", ".pytest_cache", ".venv", "dist", "build", "*.egg-info", "uv.lock", "*.pyc")


def plugin_template() -> Any:
    """The plugin template: inside the package when a wheel ships it, else the source checkout's."""
    from pathlib import Path

    package = Path(gateway.__file__).resolve().parent
    for candidate in (package / "plugin_template", package.parent / "contrib" / "plugin-template"):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return None


def gateway_workspace(start: Any) -> Any:
    """The gateway repository's uv workspace root at or above `start` (its pyproject declares the
    project `gateway` and the workspace members `plugins/*`), or None."""
    import tomllib

    for folder in (start, *start.parents):
        try:
            data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        members = data.get("tool", {}).get("uv", {}).get("workspace", {}).get("members") or []
        if data.get("project", {}).get("name") == "gateway" and "plugins/*" in members:
            return folder
    return None


def plugins_new(argv: Sequence[str]) -> int:
    import re
    import shutil
    import tempfile
    from importlib.metadata import entry_points
    from pathlib import Path

    p = argparse.ArgumentParser(
        prog="gateway plugins new", description="Create a plugin from the template (contrib/plugin-template).")
    p.add_argument("name", help="the plugin's short name, e.g. email-mask: distribution gateway-plugin-email-mask, "
                                "module gateway_plugin_email_mask, entry point (config name) email_mask")
    p.add_argument("--dir", help="the folder to create (default: plugins/<name> inside the gateway repository's "
                                 "workspace, else ./gateway-plugin-<name>)")
    p.add_argument("--template", help="the template folder (default: the one that ships with the gateway)")
    args = p.parse_args(argv)
    name = args.name
    if not re.fullmatch(PLUGIN_NAME, name) or len(name) > 40:
        return _fail(f"invalid plugin name {name!r}: use 1-40 lower-case letters and digits, words joined by "
                     f"'-' or '_', starting with a letter (e.g. email-mask)")
    dashed, under = name.replace("_", "-"), name.replace("-", "_")
    camel = "".join(word.capitalize() for word in under.split("_"))
    installed = {ep.name: ep for ep in entry_points(group="gateway")}
    if under in installed:
        dist = installed[under].dist
        return _fail(f"a plugin named {under!r} is already installed"
                     + (f" ({dist.name})" if dist is not None else "") + "; choose another name")
    template = Path(args.template) if args.template else plugin_template()
    if template is None or not (template / "pyproject.toml").is_file():
        return _fail(f"no plugin template at {template}" if template is not None else
                     "the plugin template is not part of this installation; pass --template "
                     "(it is contrib/plugin-template in the gateway's source)")
    workspace = gateway_workspace(Path.cwd())
    if args.dir:
        target = Path(args.dir)
    elif workspace is not None:
        target = workspace / "plugins" / dashed
    else:
        target = Path(f"gateway-plugin-{dashed}")
    if target.exists() or target.is_symlink():
        return _fail(f"{target} already exists; refusing to overwrite it (pick another name or --dir)")
    renames = dict(zip(TEMPLATE_NAMES, (f"gateway-plugin-{dashed}", f"gateway_plugin_{under}", under, camel,
                                        f"test_{under}"), strict=True))
    pattern = re.compile("|".join(map(re.escape, TEMPLATE_NAMES)) + r"|\bexample_")

    def rename(text: str) -> str:  # `example_` is the config keys' prefix: `<name>_`
        return pattern.sub(lambda m: renames.get(m.group(), f"{under}_"), text)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(template, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_SKIP))
        for path in sorted(staging.rglob("*"), key=lambda q: len(q.parts), reverse=True):  # files before folders
            if path.is_file():
                try:
                    path.write_text(rename(path.read_text(encoding="utf-8")), encoding="utf-8")
                except UnicodeDecodeError:
                    pass  # not text: copied as it is
            new_name = rename(path.name)
            if new_name != path.name:
                path.rename(path.with_name(new_name))
        _finish_scaffold(staging, under)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"created {target}: distribution gateway-plugin-{dashed}, module gateway_plugin_{under}, "
          f"entry point {under} (class {camel})")
    if workspace is not None and target.resolve().parent == (workspace / "plugins").resolve():
        print("next: uv sync --all-packages --all-groups     # adds it to uv.lock (commit that) and installs it\n"
              f"      uv run --no-sync pytest {target}")
    else:
        print(f"next: gateway plugins dev {target}     # install it, editable, into this gateway's environment\n"
              f"      {sys.executable} -m pytest {target}")
    return 0


def _finish_scaffold(folder: Any, under: str) -> None:
    """The README loses its `template-only` part; the pyproject names the README (which exists:
    the template's line is off, so that a copy without one builds) and describes the plugin."""
    import re

    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        readme.write_text(re.sub(r"<!-- template-only.*?<!-- /template-only -->\n?", "", text, flags=re.S),
                          encoding="utf-8")
    path = folder / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    if readme.is_file():
        text = re.sub(r"(?m)^# (readme = \S+).*$", r"\1", text)
    text = re.sub(r'(?m)^description = .*$', f'description = "The {under} gateway plugin"', text)
    path.write_text(text, encoding="utf-8")


def plugins_dev(argv: Sequence[str]) -> int:
    import shutil
    import subprocess
    import tomllib
    from pathlib import Path

    p = argparse.ArgumentParser(
        prog="gateway plugins dev",
        description="Install a plugin you are writing (a folder with its pyproject.toml) into the environment "
                    "that runs this gateway, editable: edits to its code apply at the next start.",
        epilog="`uv sync` removes packages that are not in uv.lock: after one, run this again, or sync with "
               "`uv sync --inexact` (`uv run` keeps it). A plugin under the repository's plugins/ is a workspace "
               "member instead, which every sync keeps.")
    p.add_argument("path", help="the plugin's folder")
    args = p.parse_args(argv)
    folder = Path(args.path).resolve()
    try:
        project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        dist = project["name"]
    except FileNotFoundError:
        return _fail(f"{args.path} has no pyproject.toml")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _fail(f"{args.path}/pyproject.toml: cannot read the project's name ({type(exc).__name__}: {exc})")
    names = sorted((project.get("entry-points") or {}).get("gateway") or {})
    if not names:
        return _fail(f"{dist} declares no entry point in the 'gateway' group ([project.entry-points.gateway])")
    uv = shutil.which("uv")
    cmd = ([uv, "pip", "install", "--python", sys.executable, "-e", str(folder)] if uv else
           [sys.executable, "-m", "pip", "install", "-e", str(folder)])
    print("$ " + " ".join(cmd), file=sys.stderr)
    try:
        done = subprocess.run(cmd, check=False)
    except OSError as exc:
        return _fail(f"cannot run {cmd[0]}: {exc}")
    if done.returncode != 0:
        return _fail(f"installing {dist} failed (exit {done.returncode}; see above)")
    check = subprocess.run(  # a fresh interpreter: what the gateway will see at its next start
        [sys.executable, "-c", "import json, sys; from importlib.metadata import entry_points; "
         "print(json.dumps(sorted(e.name for e in entry_points(group='gateway'))))"],
        capture_output=True, text=True, check=False)
    found = json.loads(check.stdout) if check.returncode == 0 else []
    missing = [n for n in names if n not in found]
    if missing:
        return _fail(f"{dist} was installed but its entry points {', '.join(missing)} are not visible to {sys.executable}")
    print(f"installed {dist} (editable, from {folder}) into {sys.prefix}; plugins: {', '.join(names)}")
    print("note: `uv sync` removes what uv.lock does not list; keep it with `uv sync --inexact` (or `uv run`), "
          "or run this command again after a sync")
    return 0
