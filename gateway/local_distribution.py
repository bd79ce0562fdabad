"""A plugin distribution written by a test: a module and its dist-info (with the `gateway` entry
point) in a directory, found by the gateway's discovery exactly as an installed plugin is.

Why: a plugin's tests often need a second plugin beside it (a guard that blocks on demand, to see
how the plugin reports a block). Depending on another shipped plugin breaks the plugin's isolated
install; a few lines of source installed this way do not. Put the directory on `sys.path` for an
in-process gateway and on `PYTHONPATH` for a gateway in another process (the `local_plugin`
fixture of `gateway.testing` does both).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

__all__ = ["write_distribution"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def write_distribution(site: Path, name: str, source: str, class_name: str) -> str:
    """Write plugin `name` (entry point `name = gateway_plugin_<name>:<class_name>`) into `site`;
    returns the module name, so a test can drop it from `sys.modules` afterwards."""
    if not _NAME.match(name):
        raise ValueError(f"plugin name {name!r}: use lower case letters, digits and underscores")
    module = f"gateway_plugin_{name}"
    package = site / module
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(source))
    dist = f"gateway-plugin-{name.replace('_', '-')}"
    info = site / f"{module}-0.0.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(f"[gateway]\n{name} = {module}:{class_name}\n")
    return module
