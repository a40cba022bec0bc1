"""The written interfaces of a source kind: the Source a backup reads, the kind module the registry loads
(kinds.py) and the kind's test restore (its verify hook).

A kind is a package sources/<kind>/ (sqlite, postgres, mongo, redis, directory). Its kind.py is the module the
registry loads by name and provides what Kind below describes; its verify.py provides what KindVerify
describes. To add a kind (say MySQL): write sources/mysql/{kind,verify}.py to these interfaces and its options.py
(the schemas Kind.OPTIONS and RESTORE_OPTIONS name), name them in kinds.KINDS and kinds.VERIFY_HOOKS, and add the
modules (plugins/modules/mysql_*.py) that call them, their argument_spec built from those schemas.

These classes hold no code the engine runs: they are the contract, in one place. Every Source class subclasses
Source (so the interface is visible where it is implemented); a kind module cannot subclass, so Kind and
KindVerify document module-level names.

Everything a restore reads from a set is untrusted until its sha256 is verified, and even then never reaches
a shell, an interpreter's meta-commands, a path outside the target or a followed symlink (docs/security.md).
"""


class Source(object):
    """What the backup pipeline (pipeline/backup.py: plan and run_backup) calls on a source, in this order:
    check(), then open() and its reader to the end, then describe(), tools() and verification() for the
    manifest. Check mode (plan) calls only check() and describe(). A source is used for one run."""

    # The kind's name (a key of kinds.KINDS), recorded as the manifest's `kind`.
    kind = None
    # The data object's extension: the set's data is data.<extension>[.zst|.gz][.age].
    extension = None

    def check(self):
        """Validate the source before anything is written anywhere (the file is a database, the server
        answers, options make sense). Raises ConfigError or SourceError saying what to fix; writes nothing."""
        raise NotImplementedError

    def open(self):
        """A context manager yielding a binary reader (read(size) -> bytes, b"" at the end) of the raw data,
        consistent as of one moment (a snapshot, a dump). Exiting it, normally or on error, stops every tool
        it started and removes every scratch file. May raise SourceError/ToolError while streaming: the run
        then fails and no set is committed. A reader may offer splice_fd()/spliced() (core/streams.py)."""
        raise NotImplementedError

    def describe(self):
        """The manifest's `source`: what was backed up (path, database, server version...), never a secret.
        In a run it is called after the data was read, so it may include what the snapshot found."""
        raise NotImplementedError

    def tools(self):
        """The manifest's `tools`: {tool name: version} of what made the data."""
        raise NotImplementedError

    def verification(self):
        """The manifest's `verification`: what the source checked while reading (integrity_check, row or key
        counts...) and what a restore and the kind's test restore later compare against. {} when nothing."""
        raise NotImplementedError


class Kind(object):
    """What a kind module (sources/<kind>/kind.py, loaded by kinds.load) provides at module level. The option
    names are those of the kind's Ansible modules; the runner passes the job file's."""

    # Optional: the option that names where a restore goes (`lifeboat restore --to`), e.g. "database";
    # else kinds.DEFAULT_RESTORE_TARGET.
    RESTORE_TARGET = None

    # The schema (a tuple of core.options.Option, from the kind's options.py) of what source_from_options reads
    # besides the repository's and the backup's options (repositories/options.REPOSITORY, pipeline/options.BACKUP):
    # the backup module's own argument_spec, and the options a job file of the kind carries (kinds.schema).
    OPTIONS = ()
    # The schema of what restore_from_options reads besides pipeline/options.RESTORE: the restore module's own
    # argument_spec and what a job file's `restore` object (or its top level) may carry (kinds.restore_schema).
    # runner/jobs.py refuses a job file's key that neither these nor the runner know.
    RESTORE_OPTIONS = ()

    @staticmethod
    def source_from_options(options):
        """A Source for one backup run from the backup module's options (e.g. path, tmp_dir, verify); the
        source is validated by Source.check, before anything is written. ConfigError for a bad option."""
        raise NotImplementedError

    @staticmethod
    def restore_from_options(repository, options, check_mode=False):
        """Restore a set with the restore module's options: `job`, `backup` (latest or a set id), `before`,
        `encryption.age_identity_file`, the target (RESTORE_TARGET) and the kind's own. Locates the set through
        repository (pipeline/restore.find_set, which applies repository.skip_damaged), verifies the sha256
        before live data is touched, and never leaves the target half-restored: on failure the previous data
        is put back. check_mode: download and verify only, touch nothing.

        Returns the module's result: `backup` (pipeline/restore.set_result, with `skipped` when damaged sets
        were passed over), `restored_to`, and as they apply `previous` (where the old data was kept),
        `verification` and `warnings` (a list of strings). Raises LifeboatError saying what failed."""
        raise NotImplementedError

    @staticmethod
    def put_back_from_options(options, previous, target=None, check_mode=False):
        """`lifeboat put-back` (kinds.put_back_hook): undo a restore whose data was rejected (a failed
        health check), from what restore_from_options kept aside and returned as `previous`. `target`: where the
        restore went (default: the job's, as restore_from_options resolves it). `previous` is untrusted (it comes
        back through a log): it must be exactly the name the restore makes for that target
        (<target>.lifeboat-prev-<UTC time>[-<hex>], PostgreSQL <database>_lbprev_<hex>), a symlink is never
        followed, and only those exact names are renamed or removed; anything else is a ConfigError before
        anything changes. check_mode: check, change nothing. A kind whose restore keeps nothing aside raises
        ConfigError saying so.

        Returns {'status': 'ok', 'restored_to', 'previous', 'removed' (what of the rejected restore is gone),
        'changed'} and as they apply `warnings` and the kind's own keys. Raises LifeboatError saying what failed."""
        raise NotImplementedError


class KindVerify(object):
    """What a kind's verify module (sources/<kind>/verify.py, loaded by kinds.verify_hook) provides: the test
    restore pipeline/verify.py runs on the first copy of a set (mode full, and the other modes MODES names)."""

    # The verify modes test_restore takes (kinds.verify_modes; this default when the module sets none), e.g.
    # ("full", "list") for a kind that can check a set without a scratch server (PostgreSQL: pg_restore --list).
    # For a mode the kind does not take, pipeline/verify.py only decodes the set.
    MODES = ("full",)
    # Whether the full test restore writes the set into the scratch directory (kinds.verify_stages_to_scratch):
    # pipeline/verify.py checks its free space first. False for a kind that parses the set as a stream.
    STAGES_TO_SCRATCH = True

    @staticmethod
    def test_restore(repository, job, backup_set, identity_file, scratch_dir, options):
        """Restore `backup_set` (catalog.BackupSet, manifest read) from `repository` (a Repository of the one
        store being verified) into scratch under `scratch_dir`, never into live data, and check it against
        the manifest (sha256, then what Source.verification recorded). `options`: `mode` and the kind's
        (postgres: the scratch server's login options, redis: redis_server_bin, allow_functions...).

        Returns a report dict merged into the verification result (raw_size, checked: {what: {expected,
        actual}}, ...). Raises IntegrityError(msg, report=...) when a check fails; removes every scratch file,
        database or server it made, also on failure and on KeyboardInterrupt (the runner's SIGTERM)."""
        raise NotImplementedError
