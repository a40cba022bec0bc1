"""A job's repository: the local directory, SFTP/FTP server and/or S3 bucket its sets are written to and read from."""

from ..core.errors import ConfigError
from .local import LocalRepository
from .options import FTP_KEYS, S3_KEYS, SFTP_KEYS


def _options(name, options, known):
    if not isinstance(options, dict):
        raise ConfigError("%s must be a dict of options (known: %s)" % (name, ", ".join(known)))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError("unknown %s option(s): %s (known: %s)" % (name, ", ".join(unknown), ", ".join(known)))
    return {k: v for k, v in options.items() if v is not None}


class Repository(object):
    """Sinks in the order they are read from: local first (fast, no egress), then SFTP/FTP, then S3.

    skip_damaged is the read policy of restores (the restore option of that name): when true, `latest`/`before`
    fall back past a damaged set that may be newer instead of failing (catalog.select); every kind's restore
    locates its set through the repository, so the policy reaches them all without an argument of their own."""

    def __init__(self, stores, skip_damaged=False):
        if not stores:
            raise ConfigError("no repository configured: set dest (a local directory), sftp, ftp or s3 (a bucket), "
                              "or several of them")
        self.stores = stores
        self.skip_damaged = bool(skip_damaged)

    @classmethod
    def from_options(cls, dest=None, s3=None, sftp=None, ftp=None, skip_damaged=False):
        stores = []
        if dest:
            stores.append(LocalRepository(dest))
        # Remote stores are imported only when configured: paramiko and boto3 cost 0.1-0.2 s to load.
        if sftp:
            from .sftp import SftpRepository
            stores.append(SftpRepository(**_options("sftp", sftp, SFTP_KEYS)))
        if ftp:
            from .ftp import FtpRepository
            stores.append(FtpRepository(**_options("ftp", ftp, FTP_KEYS)))
        if s3:
            from .s3 import S3Repository
            stores.append(S3Repository(**_options("s3", s3, S3_KEYS)))
        return cls(stores, skip_damaged=skip_damaged)

    def describe(self):
        return ", ".join(store.describe() for store in self.stores)

    def locations(self, job, set_id, names=None):
        return {store.name: store.set_location(job, set_id) for store in self.stores
                if names is None or store.name in names}
