"""Build the lifeboat runner as one file: a zipapp of the engine package, installed by the schedule role
(and baked into the Kubernetes runner image) instead of a tree of .py files.

The archive is reproducible: entries sorted, fixed timestamps and modes, no __pycache__. The same engine
always gives the same bytes, so the role's copy is idempotent and the sha256 it prints can be checked on
the host. Inside, the engine is the package ``lifeboat_engine`` and ``__main__`` runs its runner CLI:

    python3 build_runner.py --engine plugins/module_utils/engine --output lifeboat.pyz
    python3 lifeboat.pyz --help
"""

import argparse
import hashlib
import json
import os
import sys
import zipfile

PACKAGE = "lifeboat_engine"
ENTRY_POINT = "runner/cli.py"
MAIN = (b"# The lifeboat runner (built by the schedule role's build_runner.py).\n"
        b"import sys\n\nfrom lifeboat_engine.runner.cli import main\n\nsys.exit(main())\n")
EPOCH = (1980, 1, 1, 0, 0, 0)


def engine_files(engine_dir):
    """(name in the archive, path on disk) of every .py file of the engine tree, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(engine_dir):
        dirnames[:] = sorted(name for name in dirnames if name != "__pycache__")
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                relative = os.path.relpath(path, engine_dir).replace(os.sep, "/")
                found.append(("%s/%s" % (PACKAGE, relative), path))
    return sorted(found)


def _entry(zip_file, name, data):
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zip_file.writestr(info, data)


def build(engine_dir, output, interpreter="/usr/bin/env python3"):
    """Write the zipapp to `output` (atomically) and return {path, sha256, files}."""
    files = engine_files(engine_dir)
    if ("%s/%s" % (PACKAGE, ENTRY_POINT)) not in [entry[0] for entry in files]:
        raise SystemExit("build_runner: %s is not the lifeboat engine (no %s in it): pass the collection's "
                         "plugins/module_utils/engine directory as --engine" % (engine_dir, ENTRY_POINT))
    partial = output + ".partial"
    with open(partial, "wb") as handle:
        handle.write(b"#!" + interpreter.encode() + b"\n")
        with zipfile.ZipFile(handle, "w") as archive:
            _entry(archive, "__main__.py", MAIN)
            for name, path in files:
                with open(path, "rb") as source:
                    _entry(archive, name, source.read())
    os.chmod(partial, 0o755)
    os.replace(partial, output)
    digest = hashlib.sha256()
    with open(output, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": output, "sha256": digest.hexdigest(), "files": len(files)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--engine", required=True, help="the collection's plugins/module_utils/engine directory")
    parser.add_argument("--output", required=True, help="where to write the zipapp (e.g. lifeboat.pyz)")
    parser.add_argument("--interpreter", default="/usr/bin/env python3", help="the shebang's interpreter")
    args = parser.parse_args(argv)
    json.dump(build(args.engine, args.output, args.interpreter), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
