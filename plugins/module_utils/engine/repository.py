"""A job's repository: the local directory and/or S3 bucket its sets are written to and read from."""

from .errors import ConfigError
from .local_repository import LocalRepository
from .s3_repository import S3Repository

S3_KEYS = ("bucket", "prefix", "endpoint_url", "region", "storage_class", "sse", "sse_kms_key_id", "access_key",
           "secret_key", "session_token", "multipart_chunk_size", "max_concurrency")


class Repository(object):
    """Sinks in the order they are read from: local first (fast, no egress), then S3."""

    def __init__(self, stores):
        if not stores:
            raise ConfigError("no repository configured: set dest (a local directory), s3 (a bucket), or both")
        self.stores = stores

    @classmethod
    def from_options(cls, dest=None, s3=None):
        stores = []
        if dest:
            stores.append(LocalRepository(dest))
        if s3:
            unknown = sorted(set(s3) - set(S3_KEYS))
            if unknown:
                raise ConfigError("unknown s3 option(s): %s (known: %s)" % (", ".join(unknown), ", ".join(S3_KEYS)))
            stores.append(S3Repository(**{k: v for k, v in s3.items() if v is not None}))
        return cls(stores)

    def describe(self):
        return ", ".join(store.describe() for store in self.stores)

    def locations(self, job, set_id, names=None):
        return {store.name: store.set_location(job, set_id) for store in self.stores
                if names is None or store.name in names}
