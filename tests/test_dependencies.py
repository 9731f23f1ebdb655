"""Dependencies declared as used, and pinned for deployments (issue 10.7).

pyproject.toml is read as pip reads it; the code's imports are read with ``ast``;
which distribution ships an imported module is asked of the installed metadata. So a
module imported but not declared (it works here only because another package pulled
it in), a declared package nothing uses, or a dependency added to pyproject.toml
without `make lock` fails here rather than at a deployment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("app", "hsm", "identity", "delegation", "signing", "audit", "devpki", "dairi")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _declared(requirements: list[str]) -> dict[str, Requirement]:
    parsed = (Requirement(text) for text in requirements)
    return {canonicalize_name(r.name): r for r in parsed}


RUNTIME = _declared(PROJECT["dependencies"])
TEST = _declared(PROJECT["optional-dependencies"]["test"])


def _modules_used(directories: list[str]) -> dict[str, set[str]]:
    """Top-level modules the code imports (or opens as a package's resources with
    ``importlib.resources.files("name")``), each with the files that do."""
    local = {*FIRST_PARTY, "tests", "bench"}
    local |= {p.stem for d in directories for p in (ROOT / d).glob("*.py")}
    used: dict[str, set[str]] = {}
    for directory in directories:
        for path in sorted((ROOT / directory).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (
                    isinstance(node, ast.Call)
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and getattr(node.func, "id", getattr(node.func, "attr", "")) == "files"
                ):
                    names = [node.args[0].value]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in local and top not in sys.stdlib_module_names:
                        used.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return used


def _distributions(used: dict[str, set[str]]) -> dict[str, set[str]]:
    """The distributions (canonical names) that ship ``used``'s modules."""
    shipped_by = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for module, files in used.items():
        assert module in shipped_by, f"no installed distribution ships {module!r} ({files})"
        for distribution in shipped_by[module]:
            found.setdefault(canonicalize_name(distribution), set()).update(files)
    return found


def test_what_the_service_imports_is_declared_and_what_it_declares_is_used() -> None:
    used = _distributions(_modules_used(list(FIRST_PARTY)))
    undeclared = {name: sorted(files)[:3] for name, files in used.items() if name not in RUNTIME}
    assert undeclared == {}, "imported by the service but not in [project] dependencies"
    unused = sorted(set(RUNTIME) - set(used))
    assert unused == [], "declared in [project] dependencies but imported nowhere"


def test_what_the_tests_and_benchmarks_import_is_declared() -> None:
    used = _distributions(_modules_used(["tests", "bench"]))
    undeclared = {
        name: sorted(files)[:3]
        for name, files in used.items()
        if name not in RUNTIME and name not in TEST
    }
    assert undeclared == {}, (
        "imported by tests or bench but declared neither at run time nor in the test extra"
    )


def _locked() -> dict[str, tuple[Version, int]]:
    """requirements.lock's pins: name -> (version, number of hashes)."""
    pins: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, rest = line.partition("==")
            current = canonicalize_name(name.strip())
            pins[current] = (Version(rest.split(";")[0].rstrip(" \\")), 0)
        elif line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def test_the_lock_pins_every_runtime_dependency_within_its_range_with_hashes() -> None:
    locked = _locked()
    assert set(RUNTIME) <= set(locked), "not in requirements.lock: run `make lock`"
    outside = {
        name: str(locked[name][0])
        for name, requirement in RUNTIME.items()
        if not requirement.specifier.contains(locked[name][0], prereleases=True)
    }
    assert outside == {}, "pinned outside pyproject.toml's range: run `make lock`"
    assert [name for name, (_, hashes) in locked.items() if hashes == 0] == []
    # nothing of the test tools leaks into what a deployment installs
    assert not set(locked) & {"pytest", "hypothesis", "schemathesis", "mypy", "ruff"}
