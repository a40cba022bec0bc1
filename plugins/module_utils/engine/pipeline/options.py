"""Options every backup module shares (doc fragment lifeboat.backup.backup) and every restore module shares
(doc fragment lifeboat.backup.restore), retention's rules and the test restore's settings, each defined once.
module_options, backup_retention and backup_verify build their argument_specs from them; the runner checks job
files against BACKUP, a job's `retention` object against RETENTION (retention.parse_policy) and its `verify` object
against VERIFY (jobs.VERIFY_SETTINGS)."""

from ..core.codecs import ALGORITHMS
from ..core.options import Option

BACKUP = (
    Option("compression", default="zstd", choices=ALGORITHMS),
    Option("compression_level", "int"),
    Option("compression_threads", "int", default=0),
    Option("encryption", "dict", suboptions=(Option("age_recipients", "list", elements="str", default=[]),)),
    Option("verify", "bool", default=True),
    Option("tags", "dict", default={}),
)

RESTORE = (
    Option("backup", default="latest"),
    Option("before"),
    Option("skip_damaged", "bool", default=False),
    Option("encryption", "dict", suboptions=(Option("age_identity_file", "path"),)),
)

# Retention's rules (pipeline/retention.py): keep_last and one keep_<period> per calendar period, counts that are off
# at 0; max_age and incomplete_grace are durations (core/durations.py). Module backup_retention's options and what a
# job file's `retention` object takes.
RETENTION = (
    Option("keep_last", "int", default=0),
    Option("keep_hourly", "int", default=0),
    Option("keep_daily", "int", default=0),
    Option("keep_weekly", "int", default=0),
    Option("keep_monthly", "int", default=0),
    Option("keep_yearly", "int", default=0),
    Option("max_age"),
    Option("incomplete_grace", default="24h"),
)

# The test restore's modes (pipeline/verify.py MODES; what each does is written there) and the settings of
# pipeline/verify.verify_set that backup_verify and a job file's `verify` object (lifeboat verify) share. What a
# kind's test restore takes besides (a scratch server's login, redis_server_bin...) comes from the kind.
VERIFY_MODES = ("full", "list", "decode")
VERIFY = (
    Option("mode", choices=VERIFY_MODES, default="full"),
    Option("scratch_dir", "path"),
    Option("min_free_mb", "int"),
)
