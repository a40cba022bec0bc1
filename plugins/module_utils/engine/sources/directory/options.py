"""Options of the directory kind, each defined once: what a backup reads (dir_snapshot, and a job file of kind
directory) and what a restore reads (dir_restore, and a job file's `restore` object). The modules' argument_spec
and the runner's job checks (runner/jobs.py, through kinds.options) derive from these schemas. Only core.options
here."""

from ...core.options import Option

PATH = Option("path", "path", required=True)
TMP_DIR = Option("tmp_dir", "path")

BACKUP = (
    PATH,
    Option("exclude", "list", elements="str", default=[]),
    Option("sqlite", "bool", default=True),
    TMP_DIR,
    Option("busy_timeout", "float", default=30),
)

RESTORE = (
    PATH,
    Option("keep_previous", "bool", default=True),
    Option("numeric_owner", "bool", default=False),
    Option("keep_setuid", "bool", default=False),
    TMP_DIR,
)

# What a put-back reads (dir_put_back; the runner's put-back takes the job's path): the restored tree and the tree
# the restore kept aside (its `previous`), untrusted, checked against the path by put_back.py.
PUT_BACK = (
    PATH,
    Option("previous", "path", required=True),
)

# The schemas protocol.Kind names (kind.py re-exports them; kinds.schema and kinds.restore_schema read them here,
# without importing the kind's code): what a job file of the kind may carry, and its `restore` object.
OPTIONS = BACKUP
RESTORE_OPTIONS = RESTORE
