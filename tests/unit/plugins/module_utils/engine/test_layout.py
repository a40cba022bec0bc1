"""The engine's layout, enforced on its source (AST, nothing imported): small files, no private names taken from
another module, no Ansible import, empty __init__.py files, and package dependencies that go one way:

    core          -> core
    repositories  -> core, repositories
    pipeline      -> core, repositories, pipeline, sources.kinds (the registry, which loads kinds by name)
    sources/<k>/  -> core, repositories, pipeline.restore, pipeline.catalog, sources.protocol, sources/<k>/
    sources/*.py  -> core, sources.protocol (the registry and the written interfaces)
    runner        -> anything

See docs/design-notes.md for the map of the engine."""

import ast
import os

import engine

ENGINE = os.path.dirname(os.path.abspath(engine.__file__))
MAX_LINES = 600

# Imports between kinds that the design wants: a directory snapshot captures the SQLite databases inside the tree
# through SQLite's backup API and checks them as the sqlite kind does.
ALLOWED_KIND_IMPORTS = {("directory", "sqlite")}

# Known offenders of the dependency rule, each (importing module, imported module), left by work in progress on
# other parts of the engine. Empty this set as they are fixed: the test fails on an entry that is no longer true.
KNOWN_DEPENDENCY_OFFENDERS = set()


def engine_files():
    for directory, dirs, files in os.walk(ENGINE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def module_name(path):
    """Dotted name inside the engine: 'core.files', 'sources.postgres' (a package's __init__)."""
    parts = os.path.relpath(path, ENGINE)[:-len(".py")].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_package(path):
    return os.path.basename(path) == "__init__.py"


def is_engine_module(dotted):
    """Whether `dotted` names a module or package of the engine."""
    base = os.path.join(ENGINE, *dotted.split(".")) if dotted else ENGINE
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def resolve(path, node):
    """The engine module a relative `from ... import` names (None for an absolute import)."""
    if not node.level:
        return None
    package = module_name(path).split(".") if is_package(path) else module_name(path).split(".")[:-1]
    if package == [""]:
        package = []
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path):
    """(line, imported engine module, names) for every relative import of `path`; `from . import kind` counts as
    an import of the module `kind` of that package."""
    tree = ast.parse(open(path, "rb").read(), path)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        target = resolve(path, node)
        for alias in node.names:
            submodule = "%s.%s" % (target, alias.name) if target else alias.name
            if is_engine_module(submodule):
                found.append((node.lineno, submodule, None))
            else:
                found.append((node.lineno, target, alias.name))
    return found


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def relative(path):
    return os.path.relpath(path, ENGINE)


def test_the_walk_sees_the_engine():
    names = {module_name(path) for path in engine_files()}
    assert {"core.files", "repositories.store", "sources.kinds", "sources.protocol", "pipeline.backup",
            "runner.cli"} <= names


def test_no_engine_file_is_over_600_lines():
    sizes = {relative(path): sum(1 for _line in open(path, "rb")) for path in engine_files()}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for path in engine_files():
        modules = {}  # local name -> engine module, for attribute access such as kind._helper
        for line, target, name in imports(path):
            if name is not None and is_private(name):
                offenders.append("%s:%d imports %s from %s" % (relative(path), line, name, target))
            if name is None:
                modules[target.rsplit(".", 1)[-1]] = target
        tree = ast.parse(open(path, "rb").read(), path)
        aliases = {alias.asname: modules.get(alias.name) for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.level for alias in node.names if alias.asname}
        modules.update({local: target for local, target in aliases.items() if target})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and is_private(node.attr)):
                offenders.append("%s:%d uses %s.%s" % (relative(path), node.lineno, modules[node.value.id],
                                                       node.attr))
    assert offenders == []


def test_the_engine_never_imports_ansible():
    offenders = []
    for path in engine_files():
        for node in ast.walk(ast.parse(open(path, "rb").read(), path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("ansible", "ansible_collections"):
                    offenders.append("%s:%d imports %s" % (relative(path), node.lineno, name))
    assert offenders == []


def test_the_engine_imports_itself_relatively():
    """Ansible's module packer and the runner's zipapp (package lifeboat_engine) both need relative imports."""
    offenders = []
    for path in engine_files():
        for node in ast.walk(ast.parse(open(path, "rb").read(), path)):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "engine":
                offenders.append("%s:%d" % (relative(path), node.lineno))
    assert offenders == []


def test_every_init_is_empty():
    assert [relative(path) for path in engine_files() if is_package(path) and open(path, "rb").read().strip()] == []


def allowed(importer, imported):
    """Whether module `importer` may import module `imported` (dotted engine names), by the rules above."""
    top = importer.split(".")[0]
    if top == "runner":
        return True
    if top == "core":
        return imported.startswith("core.")
    if top == "repositories":
        return imported.split(".")[0] in ("core", "repositories")
    if top == "pipeline":
        return imported.split(".")[0] in ("core", "repositories", "pipeline") or imported == "sources.kinds"
    if top == "sources":
        if imported.split(".")[0] in ("core", "repositories") or imported == "sources.protocol":
            return True
        parts = importer.split(".")
        if len(parts) == 2:  # sources/kinds.py, sources/protocol.py
            return False
        if imported in ("pipeline.restore", "pipeline.catalog"):
            return True
        kind = parts[1]
        target = imported.split(".")
        return target[0] == "sources" and len(target) > 1 and (
            target[1] == kind or (kind, target[1]) in ALLOWED_KIND_IMPORTS)
    return False


def test_the_rules_read_as_written():
    assert allowed("core.files", "core.naming") and not allowed("core.files", "repositories.local")
    assert allowed("repositories.sftp", "repositories.remote") and not allowed("repositories.local", "pipeline.catalog")
    assert allowed("pipeline.verify", "sources.kinds") and not allowed("pipeline.verify", "sources.postgres.options")
    assert allowed("sources.redis.kind", "sources.redis.resp") and allowed("sources.mongo.verify", "pipeline.restore")
    assert not allowed("sources.redis.kind", "sources.mongo.format")
    assert not allowed("sources.redis.kind", "runner.jobs")
    assert allowed("sources.directory.kind", "sources.sqlite.snapshot")
    assert not allowed("sources.kinds", "pipeline.restore") and allowed("runner.cli", "sources.postgres.kind")


def test_package_dependencies_go_one_way():
    found = set()
    where = {}
    for path in engine_files():
        importer = module_name(path)
        for line, imported, _name in imports(path):
            if imported and imported != importer and not allowed(importer, imported):
                found.add((importer, imported))
                where.setdefault((importer, imported), "%s:%d" % (relative(path), line))
    new = sorted(found - KNOWN_DEPENDENCY_OFFENDERS)
    described = ["%s -> %s (%s)" % (a, b, where[(a, b)]) for a, b in new]
    assert new == [], "imports against the layout: %s" % ", ".join(described)
    fixed = sorted(KNOWN_DEPENDENCY_OFFENDERS - found)
    assert fixed == [], "fixed: remove from KNOWN_DEPENDENCY_OFFENDERS: %s" % fixed


def module_level_names(path):
    """Names a module binds at its top level (functions, classes, assignments, imports)."""
    names = set()
    for node in ast.parse(open(path, "rb").read(), path).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def test_every_kind_package_is_registered_and_provides_the_protocol():
    """sources/<kind>/kind.py provides protocol.Kind's functions, sources/<kind>/verify.py protocol.KindVerify's,
    and the registry names both (kinds.KINDS, kinds.VERIFY_HOOKS)."""
    from engine.sources import kinds, protocol
    required = sorted(name for name in vars(protocol.Kind) if not name.startswith("_") and name.islower())
    assert required == sorted(kinds.REQUIRED)
    sources = os.path.join(ENGINE, "sources")
    packages = sorted(name for name in os.listdir(sources)
                      if os.path.isfile(os.path.join(sources, name, "__init__.py")))
    assert packages == sorted(kinds.KINDS) == sorted(kinds.VERIFY_HOOKS)
    for kind in packages:
        assert kinds.KINDS[kind] == ".%s.kind" % kind and kinds.VERIFY_HOOKS[kind] == ".%s.verify" % kind
        assert set(required) <= module_level_names(os.path.join(sources, kind, "kind.py")), kind
        assert "test_restore" in module_level_names(os.path.join(sources, kind, "verify.py")), kind
