"""The house's rules, read from the code: commands ask their target, never which kind of target they hold."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ROOT / "provision" / "targets"
# settings.py parses --target and says which flags suit which target (input validation): it may name the kinds,
# though not import their modules.
VALIDATION = ROOT / "provision" / "settings.py"
KIND_MODULES = {"azure", "local", "ssh"}
KIND_CLASSES = {"AzureTarget", "LocalTarget", "SSHTarget"}
KIND_ATTRIBUTES = {"is_azure", "local"}  # Settings.is_azure, Machine.local


def kind_names(tree: ast.AST, *, validation: bool = False) -> list[str]:
    """Where code names a kind of target: an import of provision.targets.{azure,local,ssh} (or of those modules
    from provision.targets), a target class by name, an `.is_azure` or `.local` attribute or a `local=` keyword,
    and a target string ("azure", "local", "ssh://...") as a constant anywhere: in a comparison, a dict, an
    argument. `validation` (settings.py) keeps only the first two."""
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            modules = []
        found += [f"{line}: imports {m}" for m in modules if _kind_module(m)]
        if isinstance(node, ast.Name | ast.alias | ast.Attribute):
            name = {ast.Name: "id", ast.alias: "name", ast.Attribute: "attr"}[type(node)]
            if getattr(node, name).rsplit(".", 1)[-1] in KIND_CLASSES:
                found.append(f"{line}: names {getattr(node, name)}")
        if validation:
            continue
        if isinstance(node, ast.Attribute) and node.attr in KIND_ATTRIBUTES:
            found.append(f"{line}: reads .{node.attr}")
        if isinstance(node, ast.keyword) and node.arg in KIND_ATTRIBUTES:
            found.append(f"{line}: passes {node.arg}=")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _kind_string(node.value):
            found.append(f"{line}: says {node.value!r}")
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def _kind_module(module: str) -> bool:
    parts = module.split(".")
    return parts[:2] == ["provision", "targets"] and len(parts) > 2 and parts[2] in KIND_MODULES


def _kind_string(value: str) -> bool:
    return value in ("azure", "local") or value.startswith("ssh://")


def test_no_module_outside_targets_names_a_kind_of_target():
    product = [*ROOT.glob("provision/**/*.py"), *ROOT.glob("bootstrap/**/*.py")]
    outside = [path for path in product if TARGETS not in path.parents]
    assert VALIDATION in outside and len(outside) > 20
    found = [
        f"{path.relative_to(ROOT)}:{where}"
        for path in outside
        for where in kind_names(ast.parse(path.read_text()), validation=path == VALIDATION)
    ]
    assert found == [], "\n".join(["names a kind of target outside provision/targets/:", *found])


def test_the_rule_sees_each_way_of_naming_a_kind():
    code = """
from provision.targets.azure import AzureTarget
from provision.targets import local
import provision.targets.ssh
if settings.is_azure or machine.local or settings.target == "local" or record.target.startswith("ssh://"):
    load({"target": "azure"})
    Machine(host="h", port=0, user="u", local=True)
"""
    assert sorted(kind_names(ast.parse(code))) == [
        "2: imports provision.targets.azure",
        "2: imports provision.targets.azure.AzureTarget",
        "2: names AzureTarget",
        "3: imports provision.targets.local",
        "4: imports provision.targets.ssh",
        "5: reads .is_azure",
        "5: reads .local",
        "5: says 'local'",
        "5: says 'ssh://'",
        "6: says 'azure'",
        "7: passes local=",
    ]
    # What is not a kind: the factory, the kind-free interface, prose that mentions a kind, a command's --target.
    fine = """
from provision.targets import CLOUD, Machine, target_for, cloud_target
target_for(settings).destroy(record, out, wait=True)
help_text = "azure (default), local, or ssh://user@host[:port]."
if record.target != settings.target: pass
"""
    assert kind_names(ast.parse(fine)) == []
    assert kind_names(ast.parse("from provision.targets.azure import AzureTarget"), validation=True) != []
    assert kind_names(ast.parse("s.is_azure or s.target == 'local'"), validation=True) == []
