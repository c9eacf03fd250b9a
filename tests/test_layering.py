"""The data flows one way (crawler -> db -> classifier -> db -> digest): db imports nothing of
ours, and a wing imports db but not another wing, so each can change without the others; only
stiwatch/ wires them together. `classifier.taxonomy` is data that every part reads (issue 4: one
taxonomy for the classifier, the digest and the docs), as CONTRIBUTING.md says."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"db", "crawler", "classifier", "digest", "stiwatch"}
ALLOWED = {
    "db": set(),
    "crawler": {"db", "classifier.taxonomy"},
    "classifier": {"db"},
    "digest": {"db", "classifier.taxonomy"},
}


def imports_of(package: str) -> set[tuple[str, str]]:
    """(file, module) for every import of one of our packages in ``package``, at any depth
    (imports inside functions count too)."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {(str(path.relative_to(ROOT)), name) for name in names
                      if name.split(".")[0] in OURS and name.split(".")[0] != package}
    return found


def test_the_import_check_sees_the_imports_it_checks():
    """The check below passes when it finds no import at all (a moved package, a broken walk):
    stiwatch/, which wires everything, must be seen importing every other package."""
    assert {name.split(".")[0] for _, name in imports_of("stiwatch")} == OURS - {"stiwatch"}
    assert all((ROOT / package / "__init__.py").is_file() for package in ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_wing_imports_only_what_the_one_way_flow_allows(package):
    allowed = ALLOWED[package]
    wrong = sorted((path, name) for path, name in imports_of(package)
                   if name not in allowed and name.split(".")[0] not in allowed)
    assert wrong == [], wrong
