"""The docs and the contracts they describe, checked against the code (issue 19).

Each test reads a page and the code it documents and fails when they drift apart: a hook renamed in
`gateway/hookspecs.py` but not on docs/hooks.md, a plugin config key added without its README row,
a plugin importing the gateway's internals, a route mounted in no route-control group. Where a test
fails, fix the docs (or the group) to match the code; the message says what is missing where.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gateway
import gateway.hookspecs as hookspecs
from gateway.core.access import RouteSet
from gateway.core.route_groups import NAMED

REPO = Path(__file__).resolve().parents[1]
HOOKS_PAGE = REPO / "docs" / "hooks.md"
TEMPLATE = REPO / "contrib" / "plugin-template"
PLUGIN_DIRS = [*sorted(p.parent for p in REPO.glob("plugins/*/pyproject.toml")), TEMPLATE]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *(d / "README.md" for d in PLUGIN_DIRS)]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CONFIG_TABLE_HEADER = "| key | type | default | description |"


# -- what the code says ----------------------------------------------------------------------------


def hook_specs() -> dict[str, Any]:
    """Every hook in gateway/hookspecs.py: name -> the spec function."""
    return {name: fn for name, fn in vars(hookspecs).items() if hasattr(fn, "gateway_spec")}


def spec_params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


def plugin_classes() -> Iterator[tuple[Path, type]]:
    """(plugin folder, plugin class) for each plugin entry point of each distribution in the repo,
    the template included (it is not installed: its `src` is put on the path)."""
    for folder in PLUGIN_DIRS:
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        for target in project.get("entry-points", {}).get("gateway", {}).values():
            module, _, attr = target.partition(":")
            sys.path.append(str(folder / "src"))
            try:
                cls = getattr(importlib.import_module(module), attr)
            finally:
                sys.path.remove(str(folder / "src"))
            yield folder, cls


def implemented_hooks(cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(cls)
            if hasattr(member, "gateway_impl") or hasattr(getattr(member, "__func__", None), "gateway_impl")}


# -- what the pages say ----------------------------------------------------------------------------


def sections(text: str, level: str = "## ") -> dict[str, str]:
    """Heading -> the text under it, up to the next heading of the same level."""
    parts = re.split(rf"^{re.escape(level)}(.*)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def table_after(text: str, header: str) -> list[list[str]]:
    """The rows (as lists of cells) of the first table whose header row starts with `header`."""
    match = re.search(rf"^{re.escape(header)}.*\n\|[-|: ]+\|\s*\n((?:\|.*\n?)*)", text, re.M)
    if match is None:
        return []
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]] for row in match.group(1).splitlines()]


def parse_def(line: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """A signature line as written on the page (`async def auth(request, api_key: str) -> X  # note`)."""
    code = line.split("#")[0].rstrip()
    node = ast.parse(code + ":\n    ...").body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), line
    return node


def arg_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]


def example_trees() -> Iterator[tuple[str, ast.Module]]:
    """(page, parsed block) for each Python block of the pages that is code (not a list of
    signatures, which does not parse); an example with a `@hookimpl` must parse."""
    for page in PAGES:
        for block in PYTHON_BLOCK.findall(page.read_text()):
            try:
                tree = ast.parse(block)
            except SyntaxError as e:
                assert "@hookimpl" not in block, f"{page.relative_to(REPO)}: an example that does not parse: {e}"
                continue
            yield str(page.relative_to(REPO)), tree


def hookimpl_examples() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(page, function) for each `@hookimpl` method in the pages' Python examples."""
    for page, tree in example_trees():
        for node in ast.walk(tree):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and any("hookimpl" in ast.unparse(d) for d in node.decorator_list)):
                yield page, node


# -- 1. every hook documented, with its signature ----------------------------------------------------


def hook_sections() -> dict[str, str]:
    """docs/hooks.md's hook sections (`## \\`startup\\` and \\`shutdown\\``): hook name -> section text."""
    found: dict[str, str] = {}
    for heading, body in sections(HOOKS_PAGE.read_text()).items():
        if heading.startswith("`"):
            for name in re.findall(r"`(\w+)`", heading):
                assert name not in found, f"docs/hooks.md has two sections for `{name}`"
                found[name] = body
    return found


def test_every_hook_has_a_section_on_the_hooks_page_and_every_section_a_hook():
    specs, documented = set(hook_specs()), set(hook_sections())
    assert len(specs) >= 10  # the scan itself works
    assert sorted(specs - documented) == [], "hooks in gateway/hookspecs.py with no section in docs/hooks.md"
    assert sorted(documented - specs) == [], "sections of docs/hooks.md for hooks gateway/hookspecs.py does not have"


def test_each_hook_section_shows_the_hooks_exact_signature():
    """The section's Python block has `def <hook>(...)` with the spec's parameter names, in order,
    and `async def` exactly when the spec is a coroutine."""
    wrong: list[str] = []
    for name, body in hook_sections().items():
        spec = hook_specs()[name]
        block = PYTHON_BLOCK.search(body)
        line = next((ln for ln in (block.group(1) if block else "").splitlines()
                     if re.match(rf"(async )?def {name}\(", ln)), None)
        if line is None:
            wrong.append(f"{name}: no `def {name}(...)` in the section's first Python block")
            continue
        node = parse_def(line)
        if arg_names(node) != spec_params(spec):
            wrong.append(f"{name}: the page says ({', '.join(arg_names(node))}), "
                         f"the spec ({', '.join(spec_params(spec))})")
        if isinstance(node, ast.AsyncFunctionDef) != is_async(spec):
            wrong.append(f"{name}: the page says {'async ' if isinstance(node, ast.AsyncFunctionDef) else ''}def, "
                         f"the spec is {'async' if is_async(spec) else 'sync'}")
        if ("firstresult" in line) != bool(spec.gateway_spec.get("firstresult")):
            wrong.append(f"{name}: `# firstresult` on the page and firstresult=True in the spec must go together")
    assert not wrong, "docs/hooks.md disagrees with gateway/hookspecs.py:\n" + "\n".join(wrong)


def glance_table() -> dict[str, list[str]]:
    """docs/hooks.md's "The hooks at a glance" rows: hook name -> cells."""
    rows = table_after(sections(HOOKS_PAGE.read_text())["The hooks at a glance"], "| hook | sync/async |")
    return {re.match(r"`(\w+)\(", row[0]).group(1): row for row in rows}  # type: ignore[union-attr]


def test_the_hooks_at_a_glance_table_lists_every_hook_with_its_parameters():
    table, specs = glance_table(), hook_specs()
    assert sorted(table) == sorted(specs), "rows of docs/hooks.md's 'hooks at a glance' table vs the hookspecs"
    wrong = [f"{name}: {row[0]} vs ({', '.join(spec_params(specs[name]))})" for name, row in table.items()
             if row[0] != f"`{name}({', '.join(spec_params(specs[name]))})`"]
    assert not wrong, "parameters in the 'hooks at a glance' table:\n" + "\n".join(wrong)


# -- 2. the async hooks ------------------------------------------------------------------------------


def test_the_hooks_the_gateway_awaits_are_exactly_the_async_hooks():
    """`ASYNC_HOOKS` (what the dispatcher awaits itself) is the set of `async def` specs, and the
    page's sync/async column says the same: a hook missing from it would never be called."""
    specs = hook_specs()
    coroutines = {name for name, fn in specs.items() if is_async(fn)}
    assert len(hookspecs.ASYNC_HOOKS) == len(set(hookspecs.ASYNC_HOOKS)), "ASYNC_HOOKS names a hook twice"
    assert sorted(hookspecs.ASYNC_HOOKS) == sorted(coroutines), "ASYNC_HOOKS vs the `async def` hookspecs"
    documented = {name for name, row in glance_table().items() if row[1].startswith("async")}
    assert sorted(documented) == sorted(coroutines), "docs/hooks.md's sync/async column vs the hookspecs"


# -- no page names a hook that does not exist --------------------------------------------------------


def test_every_hookimpl_in_the_docs_examples_is_a_hook_with_its_argument_names():
    """A copied example must load: its method is a hook, takes only the spec's argument names, and
    is async exactly when the hook is."""
    specs = hook_specs()
    examples = list(hookimpl_examples())
    assert len(examples) > 10, examples  # the scan itself works
    wrong: list[str] = []
    for page, node in examples:
        if node.name not in specs:
            wrong.append(f"{page}: `{node.name}` is not a hook")
            continue
        extra = [a for a in arg_names(node) if a not in ("self", "cls") and a not in spec_params(specs[node.name])]
        if extra:
            wrong.append(f"{page}: {node.name} takes {extra}, which the spec does not offer")
        if isinstance(node, ast.AsyncFunctionDef) != is_async(specs[node.name]):
            wrong.append(f"{page}: {node.name} must be {'async ' if is_async(specs[node.name]) else ''}def")
    assert not wrong, "\n".join(wrong)


def test_no_page_names_a_hook_that_does_not_exist():
    """Hook names in prose ("the `audit` hook") and in tables whose first column is `hook`."""
    specs = hook_specs()
    named: list[tuple[str, str]] = []
    for page in PAGES:
        text = page.read_text()
        rel = str(page.relative_to(REPO))
        named += [(rel, m) for m in re.findall(r"`(\w+)` hooks?\b", text)]
        for header in re.findall(r"^\| hook \|.*$", text, re.M):
            for row in table_after(text, header):
                named += [(rel, m) for m in re.findall(r"`(\w+)`", row[0])]
    assert len(named) > 10, named  # the scan itself works
    unknown = sorted({f"{page}: `{name}`" for page, name in named if name not in specs})
    assert not unknown, "hooks the docs name that gateway/hookspecs.py does not have:\n" + "\n".join(unknown)


#: Names in a plugin README's `hooks` row that are not hooks, each with what it is.
NOT_HOOKS = {"prepare": "bedrock: the Provider method that refreshes credentials",
             "traceparent": "otel: the W3C trace-context header"}


def test_each_plugin_readme_names_the_hooks_the_plugin_implements():
    wrong: list[str] = []
    for folder, cls in plugin_classes():
        text = (folder / "README.md").read_text()
        row = re.search(r"^\| hooks \|(.*)\|\s*$", text, re.M)
        if row is None:
            wrong.append(f"{folder.name}/README.md: no `| hooks | ... |` row")
            continue
        names = set(re.findall(r"`(\w+)`", row.group(1)))
        hooks = {n for n in names if n in hook_specs()}
        if hooks != implemented_hooks(cls):
            wrong.append(f"{folder.name}/README.md names hooks {sorted(hooks)}; {cls.__name__} implements "
                         f"{sorted(implemented_hooks(cls))}")
        others = names - hooks - set(cls.Config.model_fields) - set(NOT_HOOKS)
        if others:
            wrong.append(f"{folder.name}/README.md's hooks row names {sorted(others)}: not hooks, not config keys")
    assert not wrong, "\n".join(wrong)


# -- 3. plugin config tables -------------------------------------------------------------------------


def field_names(field: str, info: Any) -> set[str]:
    """The names a config key may be written as: its own and its validation aliases."""
    names = {field, *([info.alias] if info.alias else [])}
    choices = getattr(info.validation_alias, "choices", None)
    if choices is not None:
        names |= {c for c in choices if isinstance(c, str)}
    elif isinstance(info.validation_alias, str):
        names.add(info.validation_alias)
    return names


def key_pattern(cell_name: str) -> re.Pattern[str]:
    """`<category>_threshold` (a row standing for a family of keys) as a regex; a plain name as itself."""
    parts = re.split(r"(<\w+>)", cell_name)
    return re.compile("^" + "".join(r"([a-z0-9_]+)" if p.startswith("<") else re.escape(p) for p in parts) + "$")


def config_table(folder: Path) -> list[list[str]]:
    text = (folder / "README.md").read_text()
    section = sections(text).get("Configuration")
    assert section is not None, f"{folder.name}/README.md has no `## Configuration` section"
    return table_after(section, CONFIG_TABLE_HEADER)


def test_every_plugin_config_field_has_a_description():
    missing = [f"{cls.Config.__module__}.{cls.Config.__name__}.{name}"
               for _, cls in plugin_classes() for name, info in cls.Config.model_fields.items()
               if not (info.description or "").strip()]
    assert not missing, "config fields without `Field(description=...)`:\n" + "\n".join(missing)


def test_each_plugin_readme_config_table_lists_exactly_its_config_fields():
    """`## Configuration` has a `| key | type | default | description |` table, one row per field
    of the plugin's Config (a row may add the field's aliases, or stand for a family of fields with
    a `<placeholder>` whose values the page lists in backticks); a plugin with no fields has no such
    table."""
    wrong: list[str] = []
    checked = 0
    for folder, cls in plugin_classes():
        page = f"{folder.name}/README.md"
        fields = cls.Config.model_fields
        listed = set(re.findall(r"`(\w+)`", (folder / "README.md").read_text()))
        covered: set[str] = set()
        families: list[str] = []
        for row in config_table(folder):
            names = re.findall(r"`([^`]+)`", row[0])
            if not names:
                wrong.append(f"{page}: config row without a `key`: {row[0]}")
            elif "<" in names[0]:  # `<category>_confidence_threshold` or `<category>_threshold`
                families += names
            elif names[0] not in fields:
                wrong.append(f"{page}: row `{names[0]}` is not a field of {cls.Config.__name__}")
            elif names[0] in covered:
                wrong.append(f"{page}: two rows for `{names[0]}`")
            else:
                covered.add(names[0])
                aliases = field_names(names[0], fields[names[0]])
                wrong += [f"{page}: `{a}` in the row of `{names[0]}` is not one of its names {sorted(aliases)}"
                          for a in names[1:] if re.fullmatch(r"\w+", a) and a not in aliases]
        for family in families:
            pattern = key_pattern(family)
            members = {f for f in fields if f not in covered and (m := pattern.match(f)) and set(m.groups()) <= listed}
            if not members:
                wrong.append(f"{page}: row `{family}` stands for no config field")
            covered |= members
        wrong += [f"{page}: no row for config field `{f}`" for f in fields if f not in covered]
        checked += len(fields)
    assert checked > 50  # the scan itself works
    assert not wrong, "plugin READMEs' config tables vs their Config models:\n" + "\n".join(wrong)


# -- 4. plugins use the public API only --------------------------------------------------------------


INTERNAL = ("gateway.core", "gateway.builtins")


def internal_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for each import of `gateway.core` / `gateway.builtins` (or anything inside
    them), however it is spelled: `import`, `from ... import`, `from gateway import core`, or
    `importlib.import_module("...")` with a literal name."""
    found: list[tuple[int, str]] = []

    def internal(module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in INTERNAL)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if internal(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if internal(node.module):
                found.append((node.lineno, node.module))
            elif node.module == "gateway":
                found += [(node.lineno, f"gateway.{a.name}") for a in node.names if internal(f"gateway.{a.name}")]
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and internal(node.args[0].value)):
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_import_check_sees_every_spelling():
    source = ("import gateway.core.app\nfrom gateway.builtins import x\nfrom gateway import core\n"
              "import importlib\nimportlib.import_module('gateway.core')\nfrom gateway import Plugin\n"
              "import gateway.hookspecs\nfrom gateway.testing import y\nfrom gateway_core import z\n")
    assert [line for line, _ in internal_imports(ast.parse(source))] == [1, 2, 3, 5]


def test_plugins_and_contrib_import_only_the_public_gateway_api():
    """Plugins and the template (code, tests and the docs' examples) never import the gateway's
    internals (`gateway.core`, `gateway.builtins`), which change without notice."""
    files = [p for top in ("plugins", "contrib") for p in sorted((REPO / top).rglob("*.py"))
             if ".venv" not in p.parts and "build" not in p.parts]
    assert len(files) > 50, files  # the scan itself works
    bad = [f"{path.relative_to(REPO)}:{line}: {module}"
           for path in files for line, module in internal_imports(ast.parse(path.read_text(), str(path)))]
    for page, tree in example_trees():
        bad += [f"{page} (an example): {module}" for _, module in internal_imports(tree)]
    assert not bad, "imports of the gateway's internals (use `from gateway import ...`):\n" + "\n".join(bad)


# -- 6. route control groups -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app as built for serving (not served): every core route, the model hub public, and the
    prometheus plugin's `/metrics`, which the public group lists."""
    import yaml

    from gateway.core.app import create_app, load

    folder = tmp_path_factory.mktemp("app")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "general_settings": {"master_key": "sk-1234", "enable_public_model_hub": True},
        "litellm_settings": {"store_audit_logs": True, "callbacks": ["prometheus"]},  # its `/metrics` is public
        "model_list": [{"model_name": "fake-gpt", "litellm_params": {"model": "fake/echo"}}],
    }))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", f"sqlite://{folder}/gateway.db")
        return create_app(load(str(config)))


def template(rule: str) -> str:
    """`/key/<path:ref>/regenerate` as the route lists write it: `/key/{ref}/regenerate`."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def concrete(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?\w+>", "x", rule)


def core_routes(app: Any) -> list[str]:
    """The routes the gateway itself mounts (not Quart's `/static`, not a plugin's)."""
    return sorted({r.rule for r in app.url_map.iter_rules()
                   if getattr(app.view_functions.get(r.endpoint), "__module__", "").startswith("gateway.")})


def test_every_core_route_belongs_to_a_route_control_group(app):
    """A route in no group is admin only by accident and escapes every `LiteLLMRoutes.<group>`
    that `allowed_routes` / `admin_only_routes` name: declare its group where it is defined
    (gateway/core/route_groups.py; building the app refuses a core route that declares none)."""
    groups = {name: RouteSet(routes) for name, routes in app.gateway.access.groups.items()}
    routes = core_routes(app)
    assert len(routes) > 80, routes  # the scan itself works
    orphans = [template(r) for r in routes if not any(g.matches(concrete(r)) for g in groups.values())]
    assert not orphans, "routes in no route-control group:\n" + "\n".join(orphans)


def test_every_path_a_route_control_group_lists_is_served(app):
    served = {re.sub(r"\{\w+\}", "{}", template(r.rule)).rstrip("/") or "/" for r in app.url_map.iter_rules()}
    stale = sorted(f"{name}: {path}" for name, paths in app.gateway.access.groups.items()
                   for path in paths if (re.sub(r"\{\w+\}", "{}", template(path)).rstrip("/") or "/") not in served)
    assert not stale, "paths in the route-control groups that no route serves:\n" + "\n".join(stale)


def test_the_configuration_page_names_every_route_group_and_only_those():
    text = (REPO / "docs" / "configuration.md").read_text()
    paragraph = text[text.index("Route lists hold paths"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    named = set(re.findall(r"`(\w+_routes)`", paragraph))
    assert sorted(named) == sorted(NAMED), "docs/configuration.md's list of route groups vs gateway/core/route_groups.py"


# -- the public API the rules name ----------------------------------------------------------------


def test_the_plugin_rules_list_the_whole_public_api():
    """docs/writing-a-plugin.md's rules list what `gateway/__init__.py` exports (errors as
    "`GatewayError` and its subclasses")."""
    text = (REPO / "docs" / "writing-a-plugin.md").read_text()
    rule = text[text.index("`gateway/__init__.py` lists the whole public API"):]
    rule = rule[:rule.index("\n- ")]
    named = set(re.findall(r"`(\w+)`", rule))
    errors = {n for n in gateway.__all__
              if isinstance(getattr(gateway, n), type) and issubclass(getattr(gateway, n), gateway.GatewayError)}
    assert sorted(set(gateway.__all__) - errors - named) == [], "exported by gateway but not in the rules"
    assert sorted(named - set(gateway.__all__)) == [], "in the rules but not exported by gateway"
