"""Registry of source kinds: kind name -> its kind module (sources/<kind>/kind.py) and its verify hook
(sources/<kind>/verify.py), both loaded lazily by name.

What a kind module and its verify hook must provide is written in protocol.py (Kind: ``source_from_options``,
``restore_from_options``, ``put_back_from_options``, optional ``RESTORE_TARGET``; KindVerify: ``test_restore``, optional ``MODES`` and
``STAGES_TO_SCRATCH``; Source: what the backup pipeline calls on a source). Kinds are imported only when a job
needs one, so a host without pymongo can still run SQLite jobs; ``load`` checks the kind module has what REQUIRED
names, ``verify_hook`` returns its ``test_restore``, through which ``pipeline/verify.verify_set`` dispatches,
``verify_modes`` the modes that test restore takes (its ``MODES``) and ``verify_stages_to_scratch`` whether it
needs room in the scratch directory.
"""

import importlib

from ..core.errors import ConfigError
from .protocol import KindVerify

KINDS = {
    "sqlite": ".sqlite.kind",
    "postgres": ".postgres.kind",
    "mongo": ".mongo.kind",
    "redis": ".redis.kind",
    "directory": ".directory.kind",
}

# The option that names where a restore goes, used by `lifeboat restore --to`, unless the kind module
# sets RESTORE_TARGET itself.
DEFAULT_RESTORE_TARGET = {
    "sqlite": "path",
    "directory": "path",
    "postgres": "database",
    "mongo": "database",
}

REQUIRED = ("source_from_options", "restore_from_options", "put_back_from_options")

VERIFY_HOOKS = {
    "sqlite": ".sqlite.verify",
    "postgres": ".postgres.verify",
    "mongo": ".mongo.verify",
    "redis": ".redis.verify",
    "directory": ".directory.verify",
}


def names():
    return sorted(KINDS)


def load(kind):
    """The engine module of `kind`; ConfigError with a clear message when unknown or not installed."""
    if kind not in KINDS:
        raise ConfigError("kind %r is not known: use one of %s" % (kind, ", ".join(names())))
    relative = KINDS[kind]
    full_name = (__package__ or "") + relative
    try:
        module = importlib.import_module(relative, package=__package__)
    except ImportError as exc:
        if getattr(exc, "name", None) == full_name:
            raise ConfigError("kind %s is not available in this lifeboat engine (%s.py is missing next to %s): "
                              "install a collection version that has it and re-run the schedule role"
                              % (kind, relative.lstrip("."), __file__))
        raise ConfigError("kind %s cannot be loaded: %s; install what it needs on this host" % (kind, exc))
    missing = [name for name in REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise ConfigError("kind %s (%s) lacks %s: this engine file is incomplete; update the collection"
                          % (kind, getattr(module, "__file__", relative), ", ".join(missing)))
    return module


def restore_target(kind, module=None):
    """Name of the option that `--to` overrides for `kind`."""
    target = getattr(module, "RESTORE_TARGET", None) if module is not None else None
    target = target or DEFAULT_RESTORE_TARGET.get(kind)
    if not target:
        raise ConfigError("kind %s does not say where a restore goes, so --to cannot be used: set the target "
                          "option in the job file's \"restore\" object instead" % kind)
    return target


def put_back_hook(kind, module):
    """`put_back_from_options` of the kind module `module`; ConfigError when the kind has no put-back."""
    hook = getattr(module, "put_back_from_options", None)
    if not callable(hook):
        raise ConfigError("kind %s has no put-back: its previous data, if the restore kept any, is put back by hand "
                          "(docs/runner.md)" % kind)
    return hook


def verify_module(kind):
    """The kind's verify module (sources/<kind>/verify.py); ConfigError when the kind has none or it cannot be
    loaded."""
    relative = VERIFY_HOOKS.get(kind)
    if relative is None:
        raise ConfigError("kind %r has no test restore: use one of %s" % (kind, ", ".join(sorted(VERIFY_HOOKS))))
    try:
        return importlib.import_module(relative, package=__package__)
    except ImportError as exc:
        raise ConfigError("the test restore of kind %s cannot be loaded (%s): update the collection and re-run the "
                          "schedule role" % (kind, exc))


def verify_hook(kind):
    """`test_restore` of the kind's verify module; ConfigError when the kind has none or it cannot be loaded."""
    module = verify_module(kind)
    hook = getattr(module, "test_restore", None)
    if not callable(hook):
        raise ConfigError("%s lacks test_restore: this engine file is incomplete; update the collection"
                          % getattr(module, "__file__", VERIFY_HOOKS[kind]))
    return hook


def verify_modes(kind):
    """The verify modes the kind's test restore takes: its verify module's MODES, else KindVerify.MODES (full
    only); () for a kind with no test restore (mode decode needs none)."""
    if kind not in VERIFY_HOOKS:
        return ()
    return tuple(getattr(verify_module(kind), "MODES", KindVerify.MODES))


def verify_stages_to_scratch(kind):
    """Whether the kind's full test restore writes the set into the scratch directory, so that its free space is
    checked first: the verify module's STAGES_TO_SCRATCH, else KindVerify's (True); True too when the module
    cannot be loaded (the test restore then fails saying why)."""
    try:
        module = verify_module(kind)
    except ConfigError:
        return True
    return bool(getattr(module, "STAGES_TO_SCRATCH", KindVerify.STAGES_TO_SCRATCH))


# Each kind's option schemas (sources/<kind>/options.py: OPTIONS and RESTORE_OPTIONS, which its kind.py re-exports as
# protocol.Kind says). They need only core.options, so the runner checks a job file without importing the kind.
OPTION_SCHEMAS = {
    "sqlite": ".sqlite.options",
    "postgres": ".postgres.options",
    "mongo": ".mongo.options",
    "redis": ".redis.options",
    "directory": ".directory.options",
}


def _schema(kind, name):
    relative = OPTION_SCHEMAS.get(kind)
    if relative is None:
        raise ConfigError("kind %r is not known: use one of %s" % (kind, ", ".join(names())))
    try:
        module = importlib.import_module(relative, package=__package__)
    except ImportError as exc:
        raise ConfigError("the options of kind %s cannot be loaded (%s): update the collection and re-run the "
                          "schedule role" % (kind, exc))
    schema = getattr(module, name, None)
    if not isinstance(schema, tuple):
        raise ConfigError("%s lacks %s: this engine file is incomplete; update the collection"
                          % (getattr(module, "__file__", relative), name))
    return schema


def schema(kind):
    """The options a job of `kind` takes besides the repository's and the backup's: protocol.Kind.OPTIONS, the
    backup module's own options; ConfigError when the kind is unknown or its options.py incomplete."""
    return _schema(kind, "OPTIONS")


def restore_schema(kind):
    """The options `kind`'s restore takes besides pipeline/options.RESTORE (protocol.Kind.RESTORE_OPTIONS): those of
    a job file's `restore` object; ConfigError as schema."""
    return _schema(kind, "RESTORE_OPTIONS")
