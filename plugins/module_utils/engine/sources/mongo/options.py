"""Options of the MongoDB kind, each defined once: what a backup reads (mongo_dump, and a job file of kind mongo)
and what a restore reads (mongo_restore, and a job file's `restore` object). The modules' argument_spec and the
runner's job checks (runner/jobs.py, through kinds.options) derive from these schemas. Only core.options here, so
the runner checks a job file without loading pymongo; a unit test proves METHODS and DEFAULT_TIMEOUT_MS equal
dump.METHODS and clients.DEFAULT_TIMEOUT_MS."""

from ...core.options import Option

METHODS = ("auto", "mongodump", "builtin")
DEFAULT_TIMEOUT_MS = 5000

URI = Option("mongo_uri", no_log=True)
DATABASES = Option("databases", "list", elements="str", default=[])
COLLECTIONS = Option("collections", "list", elements="str", default=[])
TIMEOUT = Option("server_selection_timeout_ms", "int", default=DEFAULT_TIMEOUT_MS)
TMP_DIR = Option("tmp_dir", "path")

BACKUP = (
    URI,
    DATABASES,
    Option("exclude_databases", "list", elements="str", default=[]),
    COLLECTIONS,
    Option("exclude_collections", "list", elements="str", default=[]),
    Option("method", default="auto", choices=METHODS),
    Option("oplog", "bool", default=False),
    TIMEOUT,
    TMP_DIR,
)

RESTORE = (
    URI,
    DATABASES,
    COLLECTIONS,
    Option("drop", "bool", default=False),
    Option("rename", "dict", default={}),
    Option("oplog_replay", "bool"),
    Option("allow_javascript", "bool", default=False),
    TIMEOUT,
    TMP_DIR,
)

# The schemas protocol.Kind names (kind.py re-exports them; kinds.schema and kinds.restore_schema read them here,
# without importing the kind's code): what a job file of the kind may carry, and its `restore` object.
OPTIONS = BACKUP
RESTORE_OPTIONS = RESTORE
