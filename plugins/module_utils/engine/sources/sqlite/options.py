"""Options of the SQLite kind, each defined once: what a backup reads (sqlite_backup, and a job file of kind sqlite)
and what a restore reads (sqlite_restore, and a job file's `restore` object). The modules' argument_spec and the
runner's job checks (runner/jobs.py, through kinds.options) derive from these schemas. Only core.options here."""

from ...core.options import Option

PATH = Option("path", "path", required=True)

BACKUP = (
    PATH,
    Option("tmp_dir", "path"),
    Option("busy_timeout", "float", default=30),
)

RESTORE = (
    PATH,
    Option("owner"),
    Option("group"),
    Option("mode", "raw"),
    Option("keep_previous", "bool", default=True),
)

# What a put-back reads (sqlite_put_back; the runner's put-back takes the job's path): the restored database and the
# copy the restore kept aside (its `previous`), untrusted, checked against the path by put_back.py.
PUT_BACK = (
    PATH,
    Option("previous", "path", required=True),
)

# The schemas protocol.Kind names (kind.py re-exports them; kinds.schema and kinds.restore_schema read them here,
# without importing the kind's code): what a job file of the kind may carry, and its `restore` object.
OPTIONS = BACKUP
RESTORE_OPTIONS = RESTORE
