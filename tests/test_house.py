"""House rules that keep the code easy to live in (issue 19): no module over 400 lines.

Every .py file under gateway/, plugins/*/src/ and contrib/ (tests excluded) counts, in lines as
`wc -l` counts them. A file still over the limit is listed in ALLOWANCE with its line count when
it was listed: it may shrink but not grow, and once it is at 400 lines or fewer it must leave the
list, so the list only ever gets shorter.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 400

#: Files over the limit that others were changing when the rule came in, with their line counts
#: then. Split one, then delete its line here; never add a line or raise a count.
ALLOWANCE: dict[str, int] = {}


def modules(root: Path) -> list[Path]:
    """The .py files the rule covers: gateway/, plugins/*/src/ and contrib/, tests excluded."""
    found = [*root.glob("gateway/**/*.py"), *root.glob("plugins/*/src/**/*.py"), *root.glob("contrib/**/*.py")]
    return sorted(p for p in found if not _is_test(p.relative_to(root)))


def _is_test(path: Path) -> bool:
    return "tests" in path.parts[:-1] or path.name.startswith("test_") or path.name == "conftest.py"


def lines(path: Path) -> int:
    """Lines as `wc -l` counts them (newline characters)."""
    return path.read_bytes().count(b"\n")


def offences(root: Path, allowance: dict[str, int], limit: int = LIMIT) -> list[str]:
    """What breaks the rule, one line each: a module over `limit` that is not allowed, an allowed
    one that grew past its count, or one that is at `limit` or below (or gone) and still listed."""
    found: list[str] = []
    counted = {p.relative_to(root).as_posix(): lines(p) for p in modules(root)}
    for name, count in counted.items():
        allowed = allowance.get(name)
        if allowed is None and count > limit:
            found.append(f"{name}: {count} lines (the limit is {limit}): split it by concept")
        elif allowed is not None and count > allowed:
            found.append(f"{name}: {count} lines, more than the {allowed} it is allowed: split it, don't grow it")
        elif allowed is not None and count <= limit:
            found.append(f"{name}: {count} lines, within the limit: take it off the allowance")
    for name in sorted(set(allowance) - set(counted)):
        found.append(f"{name}: no such module any more: take it off the allowance")
    return found


def test_no_module_is_over_400_lines() -> None:
    found = offences(ROOT, ALLOWANCE)
    assert not found, "modules over the line limit (tests/test_house.py):\n" + "\n".join(found)


def test_the_rule_sees_every_package_it_covers() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in modules(ROOT)}
    assert "gateway/core/app.py" in names and "gateway/testing.py" in names
    assert any(n.startswith("plugins/bedrock/src/gateway_plugin_bedrock/") for n in names)
    assert any(n.startswith("contrib/plugin-template/src/") for n in names)
    assert not any("/tests/" in n or n.rsplit("/", 1)[-1].startswith("test_") for n in names)
    assert set(ALLOWANCE) <= names


def _write(root: Path, name: str, count: int) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x = 1\n" * count)


def test_the_rule_names_each_offender_with_its_count(tmp_path: Path) -> None:
    _write(tmp_path, "gateway/core/big.py", 401)
    _write(tmp_path, "gateway/core/fine.py", 400)
    _write(tmp_path, "plugins/demo/src/gateway_plugin_demo/big.py", 512)
    _write(tmp_path, "plugins/demo/tests/test_big.py", 900)  # tests are not covered
    _write(tmp_path, "contrib/plugin-template/src/example/big.py", 450)
    _write(tmp_path, "contrib/plugin-template/tests/conftest.py", 900)
    _write(tmp_path, "bench/big.py", 900)  # outside the covered folders
    assert offences(tmp_path, {}) == [
        "contrib/plugin-template/src/example/big.py: 450 lines (the limit is 400): split it by concept",
        "gateway/core/big.py: 401 lines (the limit is 400): split it by concept",
        "plugins/demo/src/gateway_plugin_demo/big.py: 512 lines (the limit is 400): split it by concept",
    ]


def test_the_allowance_only_ever_shrinks(tmp_path: Path) -> None:
    _write(tmp_path, "gateway/core/kept.py", 450)
    _write(tmp_path, "gateway/core/grew.py", 451)
    _write(tmp_path, "gateway/core/split.py", 400)
    allowance = {"gateway/core/kept.py": 450, "gateway/core/grew.py": 450, "gateway/core/split.py": 420,
                 "gateway/core/gone.py": 500}
    assert offences(tmp_path, allowance) == [
        "gateway/core/grew.py: 451 lines, more than the 450 it is allowed: split it, don't grow it",
        "gateway/core/split.py: 400 lines, within the limit: take it off the allowance",
        "gateway/core/gone.py: no such module any more: take it off the allowance",
    ]
    (tmp_path / "gateway/core/grew.py").unlink()
    (tmp_path / "gateway/core/split.py").unlink()
    _write(tmp_path, "gateway/core/kept.py", 449)  # shrinking within the allowance is fine
    assert offences(tmp_path, {"gateway/core/kept.py": 450}) == []
