"""Job files of the runner: <config dir>/jobs/<job>.json, one JSON object with the modules' option names.

Example::

    {"job": "app", "kind": "sqlite", "path": "/srv/app/app.db",
     "dest": "/var/backups/lifeboat", "s3": {"bucket": "acme-backups", "prefix": "prod"},
     "retention": {"keep_daily": 7, "keep_weekly": 4}, "metrics_dir": "/var/lib/node_exporter/textfile_collector",
     "notify": {"webhook_url": "https://hooks.slack.com/...", "on": ["failure"]}, "rpo_seconds": 90000}

Every key must be known (known_options): job and kind, the repository's and the backup's options (their schemas in
repositories/options.py and pipeline/options.py), the kind's own (kinds.schema: the backup module's options, and
the restore module's, which `lifeboat restore` and the test restore take from the job too) and RUNNER_KEYS. An
unknown key is refused with the closest known name, so a misspelt option (pg_host for login_host) never silently
falls back to a default. The `restore` object takes the kind's restore options and RESTORE_KEYS, the s3, sftp and
ftp objects their store's options (repositories/options.py). A key starting with "_" is a comment (JSON has none)
and is ignored.

validate checks a job document alone and needs nothing of the host: `lifeboat check-jobs` runs it on the controller
(the schedule roles, before they write a job file); load adds what depends on the host, the file's owner and mode
(check_file_safety).
"""

import difflib
import glob
import json
import os
import re
import stat

from ..sources import kinds
from ..core.durations import parse_duration
from ..core.errors import ConfigError
from ..core.naming import validate_job
from ..core.options import Option, aliases, check_type, find, names as option_names, normalise, secret_names
from .notify import EVENTS, NOTIFY, NOTIFY_KEYS
from ..pipeline.options import BACKUP, RESTORE, VERIFY
from ..pipeline.retention import parse_policy
from ..repositories.options import FTP, REPOSITORY, S3, SFTP

JOBS_DIR = "jobs"
# A job file's `verify` object (_verify_settings): the test restore's settings backup_verify takes too
# (pipeline/options.VERIFY: mode, scratch_dir, min_free_mb), objective (a duration: how old the last good verify may
# be) and, under a kind's name, what that kind's test restore takes (verify.postgres: the scratch server's login_*,
# verify.redis: redis_server_bin).
VERIFY_SETTINGS = VERIFY + (Option("objective", "raw"), Option("postgres", "dict"), Option("redis", "dict"))
VERIFY_KEYS = option_names(VERIFY_SETTINGS)
S3_ALIASES = aliases(S3)
# The backup options a job file may leave out and the runner fills in (the others stay unset, as before).
FILLED_DEFAULTS = ("compression", "tags")
# Every option a schema marks no_log (the store's keys, the notify URLs, each kind's passwords), plus a bare
# "password"; secret_paths also takes any key ending in password or _token. A connection URI (mongo_uri) is no_log
# because it may carry a password: it is a secret when it does (_URL_WITH_PASSWORD), not otherwise.
SECRET_KEYS = (secret_names(S3) | secret_names(NOTIFY) | frozenset(["password"]).union(
    *(secret_names(kinds.schema(kind)) | secret_names(kinds.restore_schema(kind)) for kind in kinds.names()))) \
    - frozenset(["mongo_uri"])
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s:]*:[^/@\s]+@")
# The keys of a job file the runner reads itself (besides job, kind and the options of the repository, the backup
# and the kind): a `verify` object is the test restore's settings (_verify_settings); verify_objective is an older
# spelling of verify.objective; tmp_dir (an option of most kinds) is where `lifeboat verify` test-restores without a
# verify.scratch_dir, for every kind.
RUNNER_KEYS = ("retention", "prune_after_run", "metrics_dir", "rpo_seconds", "rto", "rto_seconds", "verify_objective",
               "restore", "notify", "tmp_dir")
# What the `restore` object takes besides the kind's restore options: backup and before come from the command line
# (--backup, --before) and the repository from the job, so they have no place there.
RESTORE_KEYS = ("skip_damaged", "encryption")
# JSON has no comments: a key starting with this is one, accepted and never read.
COMMENT = "_"


def known_options(kind):
    """{name: Option} of the kind's options a job file may carry at its top level (aliases under their own name
    too), and the names of all the others it may carry (job, kind, the repository's, the backup's, RUNNER_KEYS)."""
    options = {}
    for option in kinds.schema(kind) + kinds.restore_schema(kind):
        for name in (option.name,) + option.aliases:
            options.setdefault(name, option)
    return options, ("job", "kind") + option_names(REPOSITORY) + option_names(BACKUP) + RUNNER_KEYS


def _refuse_unknown(document, known, suggest, where, what, hint):
    """ConfigError naming each key of `document` not in `known` (comments aside), with the closest of `suggest`."""
    unknown = sorted(str(key) for key in document if key not in known and not str(key).startswith(COMMENT))
    if not unknown:
        return
    described = []
    for key in unknown:
        close = difflib.get_close_matches(key, suggest, n=1)
        described.append("%s (did you mean %s?)" % (key, close[0]) if close else key)
    plural = "s" if len(unknown) > 1 else ""
    raise ConfigError("%s: unknown %s%s %s (%s)" % (where, what, plural, ", ".join(described), hint))


def _store_options(document, store, schema, where):
    """A store's object (s3, sftp, ftp) without its comments, after a ConfigError naming each key its schema does
    not know, with the closest name (Repository.from_options would refuse it when the run makes the store)."""
    known = option_names(schema)
    _refuse_unknown(document, set(known) | set(aliases(schema)), sorted(known), where, store + " option",
                    "known: %s" % ", ".join(known))
    return {key: value for key, value in document.items() if not str(key).startswith(COMMENT)}


def _check_kind_options(job, kind, where):
    """A copy of `job` with no key that no schema knows (ConfigError), the aliases of the kind's options resolved
    (the name wins over its alias) and their types checked, at the top level and in the `restore` object."""
    options, others = known_options(kind)
    named = "job %s" % job["job"]
    who = "%s (kind %s)" % (named if where in ("job", named) else "%s: %s" % (where, named), kind)
    _refuse_unknown(job, set(options) | set(others),
                    sorted(set(option.name for option in options.values()) | set(others)), who, "option",
                    "a job file takes the options of its kind's modules, the repository's and the runner's: "
                    "docs/runner.md")
    schema = tuple({option.name: option for option in options.values()}.values())
    job = normalise(schema, job, where, unknown="keep", types=False)
    for option in schema:
        # (the backup's options are checked with the others of the backup; verify may be an object: _verify_settings)
        if job.get(option.name) is not None and option.name not in option_names(BACKUP):
            check_type(option, job[option.name], where)
    if isinstance(job.get("restore"), dict):
        restore_schema = kinds.restore_schema(kind)
        known = option_names(restore_schema) + RESTORE_KEYS
        _refuse_unknown(job["restore"], set(known) | set(aliases(restore_schema)), sorted(set(known)), who,
                        "restore option", "the restore object takes the options of the kind's restore module, except "
                        "the repository's and backup and before: lifeboat restore --backup, --before")
        job["restore"] = normalise(restore_schema, job["restore"], where + ": restore", unknown="keep")
    return job


def job_path(config_dir, job):
    return os.path.join(config_dir, JOBS_DIR, "%s.json" % validate_job(job))


def _secrets(document, where=""):
    """(dotted path, value) of each value that looks secret (credentials, webhook URLs, URLs with a password)."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            path = "%s.%s" % (where, key) if where else str(key)
            lowered = str(key).lower()
            secret_name = lowered in SECRET_KEYS or lowered.endswith("password") or lowered.endswith("_token")
            if secret_name and value not in (None, "", [], {}):
                found.append((path, value))
            elif isinstance(value, str) and _URL_WITH_PASSWORD.search(value):
                found.append((path, value))
            else:
                found.extend(_secrets(value, path))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(_secrets(value, "%s[%d]" % (where, index)))
    return found


def secret_paths(document, where=""):
    """Dotted paths of values that look secret (credentials, webhook URLs, URLs with a password)."""
    return [path for path, _value in _secrets(document, where)]


def _quoted(value):
    """How a message may quote `value` or a part of it: repr (%r) and str (%s)."""
    found = {repr(value), str(value)}
    for part in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        found |= _quoted(part)
    return found


def redact(message, document):
    """`message` (an error about `document`) without the secret values of `document` it may quote (a type error
    says "..., not %r"); quotes shorter than 4 characters stay (they would mangle the message, and say little)."""
    quotes = set()
    for _path, value in _secrets(document):
        quotes |= _quoted(value)
    for quoted in sorted(quotes, key=len, reverse=True):
        if len(quoted) >= 4:
            message = message.replace(quoted, "<secret>")
    return message


def check_file_safety(path, document, st=None):
    """Refuse job files others could change (they name commands to run) or read when they hold secrets."""
    st = st or os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("job file %s is not a regular file" % path)
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (0, os.geteuid()):
        raise ConfigError("job file %s is owned by uid %d, not by root or the user running lifeboat (uid %d): "
                          "refusing it, since whoever owns it chooses what runs; chown it"
                          % (path, st.st_uid, os.geteuid()))
    if mode & 0o022:
        raise ConfigError("job file %s is writable by group or others (mode %04o): refusing it, since whoever can "
                          "write it chooses what runs; chmod 0600 %s" % (path, mode, path))
    secrets = secret_paths(document)
    if secrets and mode & 0o044:
        raise ConfigError("job file %s holds secrets (%s) but is readable by group or others (mode %04o): refusing "
                          "to run; chmod 0600 %s" % (path, ", ".join(sorted(secrets)), mode, path))


def _expect(document, key, types, what, where):
    value = document.get(key)
    if value is not None and not isinstance(value, types):
        raise ConfigError("%s: %s must be %s, not %r" % (where, key, what, value))
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigError("%s: %s must be %s, not %r" % (where, key, what, value))
    return value


def _check_in(schema, document, prefix, where):
    """check_type of each option of `schema` set in `document` (an object of the job file), named prefix.name."""
    for option in schema:
        if document.get(option.name) is not None:
            named = Option(prefix + option.name, option.type, option.default, choices=option.choices,
                           elements=option.elements)
            check_type(named, document[option.name], where)


def _verify_settings(job, where):
    """The job file's `verify` object (how `lifeboat verify` test-restores the job), normalised into
    job["verify_restore"]. A `verify` that is true or false is the backup modules' own option (check the data
    after the backup) and stays where it is."""
    value = job.get("verify")
    if value is None or isinstance(value, bool):
        settings = {}
    elif isinstance(value, dict):
        settings = dict(value)
        del job["verify"]  # the backup modules' verify option keeps its default
    else:
        raise ConfigError("%s: verify must be an object such as {\"mode\": \"full\", \"objective\": \"8d\"} (or "
                          "true/false, the backup option), not %r" % (where, value))
    unknown = sorted(set(settings) - set(VERIFY_KEYS))
    if unknown:
        raise ConfigError("%s: unknown verify option(s) %s (known: %s)"
                          % (where, ", ".join(unknown), ", ".join(VERIFY_KEYS)))
    settings["mode"] = settings.get("mode") or find(VERIFY, "mode").default
    _check_in(VERIFY_SETTINGS, settings, "verify.", where)
    if settings.get("scratch_dir") and not os.path.isabs(settings["scratch_dir"]):
        raise ConfigError("%s: verify.scratch_dir must be an absolute path, not %r" % (where, settings["scratch_dir"]))
    objective = settings.get("objective", job.get("verify_objective"))
    settings["objective"] = parse_duration(objective, "%s: verify.objective" % where, positive=True) \
        if objective is not None else None
    min_free = settings.get("min_free_mb")
    if min_free is not None and min_free < 0:
        raise ConfigError("%s: verify.min_free_mb must be 0 or more" % where)
    for key in ("postgres", "redis"):
        settings[key] = dict(settings.get(key) or {})
    job["verify_restore"] = settings


def validate(document, name=None, where="job"):
    """Check a job document and return a normalised copy (defaults filled, s3 aliases resolved)."""
    if not isinstance(document, dict):
        raise ConfigError("%s must be a JSON object" % where)
    job = dict(document)
    if name is not None:
        if job.get("job") in (None, ""):
            job["job"] = name
        elif job["job"] != name:
            raise ConfigError("%s: job %r does not match the file name %r: rename the file or fix job"
                              % (where, job["job"], name))
    if not isinstance(job.get("job"), str):
        raise ConfigError("%s: job (the job name) is required" % where)
    validate_job(job["job"])
    kind = job.get("kind")
    if kind not in kinds.KINDS:
        raise ConfigError("%s: kind must be one of %s, not %r" % (where, ", ".join(kinds.names()), kind))
    job = _check_kind_options(job, kind, where)
    check_type(find(REPOSITORY, "dest"), job.get("dest"), where)
    s3 = _expect(job, "s3", dict, "an object", where)
    remotes = {}
    # The stores check their own values when the run makes them; here unknown keys are refused (with the closest
    # name) and unset values go.
    for remote, schema in (("sftp", SFTP), ("ftp", FTP)):
        if _expect(job, remote, dict, "an object with host, user and path", where):
            remotes[remote] = job[remote] = normalise(schema, _store_options(job[remote], remote, schema, where),
                                                      where, unknown="keep", types=False, drop_unset=True)
    if not job.get("dest") and not s3 and not remotes:
        raise ConfigError("%s: set dest (a local directory), s3 (an object with bucket), sftp or ftp (objects with "
                          "host, user and path), or several of them" % where)
    if s3:
        s3 = normalise(S3, _store_options(s3, "s3", S3, where), where, unknown="keep", types=False,
                       drop_unset=True)  # aliases resolved
        if not s3.get("bucket"):
            raise ConfigError("%s: s3.bucket is required when s3 is set" % where)
        job["s3"] = s3
    for option in BACKUP:
        if option.name in FILLED_DEFAULTS:
            job.setdefault(option.name, option.default)
        if option.name != "verify":  # a job file's verify may be the verify object (_verify_settings)
            check_type(option, job.get(option.name), where)
    if job.get("compression_threads") is not None and job["compression_threads"] < 0:
        raise ConfigError("%s: compression_threads must be 0 (one per core) or more" % where)
    recipients = (job.get("encryption") or {}).get("age_recipients")
    if recipients is not None and not (isinstance(recipients, list) and all(isinstance(r, str) for r in recipients)):
        raise ConfigError("%s: encryption.age_recipients must be a list of age public keys" % where)
    if job.get("retention") is not None:
        if not isinstance(job["retention"], dict):
            raise ConfigError("%s: retention must be an object such as {\"keep_daily\": 7}" % where)
        try:
            parse_policy(job["retention"])
        except ConfigError as exc:
            raise ConfigError("%s: %s" % (where, exc.msg))
    _expect(job, "prune_after_run", bool, "true or false", where)
    job.setdefault("prune_after_run", bool(job.get("retention")))
    metrics_dir = _expect(job, "metrics_dir", str, "a directory path", where)
    if metrics_dir and not os.path.isabs(metrics_dir):
        raise ConfigError("%s: metrics_dir must be an absolute path, not %r" % (where, metrics_dir))
    _expect(job, "tmp_dir", str, "a directory path", where)
    rpo = _expect(job, "rpo_seconds", int, "a whole number of seconds", where)
    if rpo is not None and rpo <= 0:
        raise ConfigError("%s: rpo_seconds must be more than 0" % where)
    for key in ("rto", "rto_seconds"):
        if job.get(key) is not None:
            job["rto_seconds"] = parse_duration(job[key], "%s: %s" % (where, key), positive=True)
    _verify_settings(job, where)
    if _expect(job, "restore", dict, "an object of restore options", where):
        check_type(find(RESTORE, "skip_damaged"), job["restore"].get("skip_damaged"), where + ": restore")
    notify = _expect(job, "notify", dict, "an object", where)
    if notify:
        unknown = sorted(set(notify) - set(NOTIFY_KEYS))
        if unknown:
            raise ConfigError("%s: unknown notify option(s) %s (known: %s)"
                              % (where, ", ".join(unknown), ", ".join(NOTIFY_KEYS)))
        on = notify.get("on")
        if on is not None and (not isinstance(on, list) or set(on) - set(EVENTS)):
            raise ConfigError("%s: notify.on must be a list of %s" % (where, ", ".join(EVENTS)))
        mail_to = notify.get("mail_to")
        if mail_to is not None and not (isinstance(mail_to, str) or (
                isinstance(mail_to, list) and all(isinstance(m, str) for m in mail_to))):
            raise ConfigError("%s: notify.mail_to must be an address or a list of addresses" % where)
        command = notify.get("mail_command")
        if command is not None and not (isinstance(command, list) and command
                                        and all(isinstance(a, str) and a for a in command)):
            raise ConfigError("%s: notify.mail_command must be a non-empty list of arguments, such as "
                              "[\"/usr/sbin/sendmail\", \"-t\"]" % where)
        for key in ("webhook_url", "healthcheck_url"):
            url = notify.get(key)
            if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                raise ConfigError("%s: notify.%s must be an http(s) URL" % (where, key))
        timeout = notify.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout <= 0):
            raise ConfigError("%s: notify.timeout must be a number of seconds" % where)
        _check_in(NOTIFY, notify, "notify.", where)  # the type of each, mail_from's too (the checks above say more)
    return job


def load(config_dir, name, check_safety=True):
    """Read, check and normalise the job file of `name`; ConfigError with the path on any problem."""
    path = job_path(config_dir, name)
    try:
        with open(path, "r") as handle:
            st = os.fstat(handle.fileno())
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError("job %s has no job file %s: check the job name (lifeboat jobs lists them) or "
                          "--config-dir" % (name, path))
    except OSError as exc:
        raise ConfigError("cannot read job file %s: %s" % (path, exc.strerror))
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ConfigError("job file %s is not valid JSON: %s" % (path, exc))
    if check_safety:
        check_file_safety(path, document, st)
    return validate(document, name, where=path)


def names(config_dir):
    """Job names with a file in <config dir>/jobs, sorted."""
    found = []
    for path in sorted(glob.glob(os.path.join(config_dir, JOBS_DIR, "*.json"))):
        found.append(os.path.basename(path)[:-len(".json")])
    return found
