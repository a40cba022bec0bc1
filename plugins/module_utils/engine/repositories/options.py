"""The options that name a job's repository (doc fragment lifeboat.backup.repository): job, dest, sftp, ftp and
s3, each defined once. The modules' argument_spec (module_options), the keys Repository.from_options accepts
and the runner's job-file checks (runner/jobs) all derive from these schemas."""

from ..core.options import Option, names
from .s3 import SSE_VALUES, STORAGE_CLASSES  # s3.py loads boto3 only when a store is made

S3 = (
    Option("bucket", required=True),
    Option("prefix", default=""),
    Option("endpoint_url"),
    Option("region"),
    Option("storage_class", choices=STORAGE_CLASSES),
    Option("sse", choices=SSE_VALUES),
    Option("sse_kms_key_id"),
    Option("access_key", no_log=True, aliases=["aws_access_key_id"]),
    Option("secret_key", no_log=True, aliases=["aws_secret_access_key"]),
    Option("session_token", no_log=True, aliases=["aws_session_token"]),
    Option("multipart_chunk_size", "int"),
    Option("max_concurrency", "int"),
)

# host, port, user, path and timeout mean the same for SFTP and FTP; the port and credentials differ.
SFTP = (
    Option("host", required=True),
    Option("port", "int", default=22),
    Option("user", required=True),
    Option("path", required=True),
    Option("key_file", "path"),
    Option("password_file", "path", no_log=False),
    Option("known_hosts_file", "path"),
    Option("host_key_fingerprint", no_log=False),
    Option("timeout", "int", default=30),
)

FTP = (
    Option("host", required=True),
    Option("port", "int", default=21),
    Option("user", required=True),
    Option("path", required=True),
    Option("password_file", "path", required=True, no_log=False),
    Option("tls", "bool", default=True),
    Option("tls_verify", "bool", default=True),
    Option("ca_file", "path"),
    Option("timeout", "int", default=30),
)

REPOSITORY = (
    Option("job", required=True),
    Option("dest", "path"),
    Option("sftp", "dict", suboptions=SFTP),
    Option("ftp", "dict", suboptions=FTP),
    Option("s3", "dict", suboptions=S3),
)

# At least one store (module required_one_of; the runner says the same in its own words).
STORES = ("dest", "s3", "sftp", "ftp")

S3_KEYS = names(S3)
SFTP_KEYS = names(SFTP)
FTP_KEYS = names(FTP)
