"""S3 (or any S3-compatible store) repository: multipart streaming upload, manifest put last.

The size of the data is not known up front, and S3 allows at most 10,000 parts of 5 MiB to 5 GiB (5 TiB per
object). Parts start at multipart_chunk_size and double after every GROWTH_STEP parts (at most 5 GiB), so the
16 MiB default carries an object up to S3's 5 TiB limit (and the 5 MiB minimum up to 4.87 TiB). Memory is bounded
by (max_concurrency + 1) * the current part size: max_concurrency parts in flight plus the one being filled (see
part_size, and docs/fault-tolerance.md for the bound at each size).
"""

import importlib.util
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from ..core import manifest as manifest_mod
from ..core.errors import ConfigError, NotFoundError, SinkError
from ..core.naming import DATA_PREFIX, MANIFEST_NAME, is_set_id, job_key, normalise_prefix, set_key
from .store import SetWriter, Store, StoredSet

# boto3 is imported when the first client is made (in the preflight thread of a backup, beside the source
# check): loading it takes 0.1-0.2 s that a run should not wait for up front.
HAS_BOTO3 = importlib.util.find_spec("boto3") is not None

MIB = 1024 * 1024
MIN_PART = 5 * MIB
MAX_PARTS = 10000
MAX_PART = 5 * 1024 * MIB
MAX_OBJECT = 5 * 1024 * 1024 * MIB
GROWTH_STEP = 1000  # parts uploaded at each part size before it doubles
DEFAULT_CHUNK = 16 * MIB
DEFAULT_CONCURRENCY = 4
SSE_VALUES = ("AES256", "aws:kms")
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
                   "GLACIER_IR", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY")


def _is_botocore(exc, *names):
    """Whether `exc` is one of botocore's exceptions `names` (none can be raised before botocore is loaded)."""
    exceptions = sys.modules.get("botocore.exceptions")
    return exceptions is not None and isinstance(exc, tuple(getattr(exceptions, name) for name in names))


def error_code(exc):
    """The S3 error code of a ClientError ('NoSuchKey', '404'...), else None."""
    return exc.response.get("Error", {}).get("Code", "") if _is_botocore(exc, "ClientError") else None


def explain(exc, repo, action):
    """An operator-facing message for a boto3/botocore failure."""
    where = "s3://%s" % repo.bucket + ("/" + repo.prefix if repo.prefix else "")
    endpoint = repo.endpoint_url or "AWS"
    if _is_botocore(exc, "EndpointConnectionError", "ConnectTimeoutError"):
        return "S3 endpoint %s is unreachable while trying to %s %s (%s); check s3.endpoint_url, DNS and " \
               "network, then run again" % (endpoint, action, where, exc)
    if _is_botocore(exc, "NoCredentialsError"):
        return "no AWS credentials found to %s %s: set s3.access_key/s3.secret_key, an instance profile, " \
               "or AWS_* environment variables" % (action, where)
    code = error_code(exc)
    if code is not None:
        hint = {
            "NoSuchBucket": "the bucket does not exist: create it (role lifeboat.backup.s3_bucket) or fix s3.bucket",
            "AccessDenied": "the credentials may not do this: grant s3:PutObject/GetObject/ListBucket/DeleteObject",
            "InvalidAccessKeyId": "the access key is not known to this endpoint: check s3.access_key",
            "SignatureDoesNotMatch": "the secret key is wrong: check s3.secret_key",
            "InvalidObjectState": "the object is archived (GLACIER/DEEP_ARCHIVE): restore it with S3 "
                                  "restore-object first, then run again",
        }.get(code, "see the error code in the AWS S3 documentation")
        return "S3 refused to %s %s: %s (%s); %s" % (action, where, code or "error", exc, hint)
    return "S3 failed to %s %s: %s" % (action, where, exc)


def part_size(number, start, step=GROWTH_STEP):
    """Size of part `number` (1-based): `start` for the first `step` parts, doubled after every further `step`
    parts, at most 5 GiB. Earlier parts are never larger than later ones, so (max_concurrency + 1) times the
    current size bounds what is in memory."""
    doublings = min((number - 1) // step, 32)
    return min(start << doublings, max(start, MAX_PART))


class S3SetWriter(SetWriter):
    def __init__(self, repo, key_prefix, data_name):
        self.repo = repo
        self.key = key_prefix + data_name
        self.manifest_key = key_prefix + MANIFEST_NAME
        self._pending = []  # chunks of the next part, joined once when it is full (one copy per byte)
        self._pending_bytes = 0
        self._total = 0
        self._upload_id = None
        self._futures = []
        self._data_written = False
        self._pool = ThreadPoolExecutor(max_workers=repo.max_concurrency)
        self._slots = threading.BoundedSemaphore(repo.max_concurrency)

    def _part_size(self):
        return part_size(len(self._futures) + 1, self.repo.chunk_size, self.repo.growth_step)

    def write(self, chunk):
        """Cut the stream into parts of exactly the current part size (only the last may be smaller)."""
        self._total += len(chunk)
        if self._total > MAX_OBJECT:
            raise SinkError("the artifact is larger than 5 TiB, the largest object S3 stores: back this source up "
                            "to dest (a local directory or SFTP repository) instead")
        while chunk:
            room = self._part_size() - self._pending_bytes
            if len(chunk) > room:
                piece, chunk = chunk[:room], chunk[room:]
            else:
                piece, chunk = chunk, b""
            self._pending.append(piece)
            self._pending_bytes += len(piece)
            if self._pending_bytes >= self._part_size():
                self._submit_pending()

    def _take_pending(self):
        data = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        return data

    def _submit_pending(self):
        self._raise_failed_parts()
        client = self.repo.client
        if self._upload_id is None:
            try:
                self._upload_id = client.create_multipart_upload(
                    Bucket=self.repo.bucket, Key=self.key, **self.repo.object_args(data=True))["UploadId"]
            except Exception as exc:  # pylint: disable=broad-except
                raise SinkError(explain(exc, self.repo, "start a multipart upload to"))
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise SinkError("the artifact needs more than %d parts (parts start at s3.multipart_chunk_size, %d "
                            "bytes, and double after every %d): raise s3.multipart_chunk_size"
                            % (MAX_PARTS, self.repo.chunk_size, self.repo.growth_step))
        # A slot first, then the join: at most max_concurrency - 1 parts are in flight while the part being
        # filled exists twice (its chunks and the joined copy), so memory stays within max_concurrency + 1 parts.
        self._slots.acquire()
        try:
            self._futures.append(self._pool.submit(self._upload_part, number, self._take_pending()))
        except BaseException:
            self._slots.release()
            raise

    def _upload_part(self, number, data):
        try:
            response = self.repo.client.upload_part(Bucket=self.repo.bucket, Key=self.key, UploadId=self._upload_id,
                                                    PartNumber=number, Body=data)
            return {"PartNumber": number, "ETag": response["ETag"]}
        finally:
            self._slots.release()

    def _raise_failed_parts(self):
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise SinkError(explain(future.exception(), self.repo, "upload a part to"))

    def commit(self, manifest_bytes):
        client = self.repo.client
        try:
            if self._upload_id is None:
                client.put_object(Bucket=self.repo.bucket, Key=self.key, Body=self._take_pending(),
                                  **self.repo.object_args(data=True))
            else:
                if self._pending:
                    self._submit_pending()
                parts = []
                for future in self._futures:
                    try:
                        parts.append(future.result())
                    except Exception as exc:  # pylint: disable=broad-except
                        raise SinkError(explain(exc, self.repo, "upload a part to"))
                client.complete_multipart_upload(Bucket=self.repo.bucket, Key=self.key, UploadId=self._upload_id,
                                                 MultipartUpload={"Parts": parts})
                self._upload_id = None
            self._data_written = True
            client.put_object(Bucket=self.repo.bucket, Key=self.manifest_key, Body=manifest_bytes,
                              ContentType="application/json", **self.repo.object_args(data=False))
        except SinkError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise SinkError(explain(exc, self.repo, "write set objects to"))
        finally:
            self._pool.shutdown(wait=True)

    def abort(self):
        """Abort the multipart upload and remove a data object that has no manifest yet."""
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
        client = self.repo.client
        try:
            if self._upload_id is not None:
                client.abort_multipart_upload(Bucket=self.repo.bucket, Key=self.key, UploadId=self._upload_id)
            if self._data_written:
                client.delete_object(Bucket=self.repo.bucket, Key=self.key)
        except Exception:  # pylint: disable=broad-except
            pass  # best effort: without a manifest nothing here looks complete, and lifecycle rules clean up


class S3Repository(Store):
    """Implements Store on an S3 bucket (and prefix); list_objects and delete_keys serve retention's batch
    removal."""

    name = "s3"

    def __init__(self, bucket, prefix="", endpoint_url=None, region=None, storage_class=None, sse=None,
                 sse_kms_key_id=None, access_key=None, secret_key=None, session_token=None,
                 multipart_chunk_size=None, max_concurrency=None, client=None, growth_step=GROWTH_STEP):
        if not HAS_BOTO3 and client is None:
            raise ConfigError("the s3 option needs the Python package boto3 on this host: pip install boto3 "
                              "(or the OS package python3-boto3)")
        if not bucket:
            raise ConfigError("s3.bucket is required when s3 is set")
        if sse and sse not in SSE_VALUES:
            raise ConfigError("s3.sse must be one of %s" % ", ".join(SSE_VALUES))
        if sse_kms_key_id and sse != "aws:kms":
            raise ConfigError("s3.sse_kms_key_id needs s3.sse: aws:kms")
        if storage_class and storage_class not in STORAGE_CLASSES:
            raise ConfigError("s3.storage_class must be one of %s" % ", ".join(STORAGE_CLASSES))
        if bool(access_key) != bool(secret_key):
            raise ConfigError("set both s3.access_key and s3.secret_key, or neither (to use the AWS credential chain)")
        self.bucket = bucket
        self.prefix = normalise_prefix(prefix)
        self.endpoint_url = endpoint_url
        self.region = region
        self.storage_class = storage_class
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.chunk_size = int(multipart_chunk_size or DEFAULT_CHUNK)
        if self.chunk_size < MIN_PART:
            raise ConfigError("s3.multipart_chunk_size must be at least 5 MiB (%d bytes), S3's minimum part size"
                              % MIN_PART)
        if self.chunk_size > MAX_PART:
            raise ConfigError("s3.multipart_chunk_size must be at most 5 GiB (%d bytes), S3's largest part size"
                              % MAX_PART)
        self.growth_step = int(growth_step)  # a parameter so tests can show the growth with a few small parts
        if self.growth_step < 1:
            raise ConfigError("the part growth step must be at least 1 part")
        self.max_concurrency = int(max_concurrency or DEFAULT_CONCURRENCY)
        if not 1 <= self.max_concurrency <= 64:
            raise ConfigError("s3.max_concurrency must be between 1 and 64")
        self._credentials = (access_key, secret_key, session_token)
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self):
        with self._client_lock:  # the preflight thread and the main thread may ask at once
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self):
        import boto3  # pylint: disable=import-outside-toplevel
        import botocore.config  # pylint: disable=import-outside-toplevel
        access_key, secret_key, session_token = self._credentials
        session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                        aws_session_token=session_token, region_name=self.region)
        config = botocore.config.Config(
            retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120,
            max_pool_connections=self.max_concurrency + 4,
            s3={"addressing_style": "path"} if self.endpoint_url else {})
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def object_args(self, data):
        args = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.sse_kms_key_id
        if data and self.storage_class:
            args["StorageClass"] = self.storage_class  # manifests stay STANDARD so catalogs stay cheap to read
        return args

    def describe(self):
        return "s3://%s/%s" % (self.bucket, self.prefix) if self.prefix else "s3://%s" % self.bucket

    def set_location(self, job, set_id):
        return "s3://%s/%s" % (self.bucket, set_key(self.prefix, job, set_id))

    def preflight(self):
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # pylint: disable=broad-except
            if error_code(exc) in ("404", "NoSuchBucket"):
                raise SinkError("S3 bucket %s does not exist at %s: create it (role lifeboat.backup.s3_bucket) or "
                                "fix s3.bucket" % (self.bucket, self.endpoint_url or "AWS"))
            raise SinkError(explain(exc, self, "reach"))

    def begin_set(self, job, set_id, data_name):
        return S3SetWriter(self, set_key(self.prefix, job, set_id), data_name)

    def list_objects(self, prefix):
        """Every object under `prefix` (list_objects_v2 pages), as S3 describes them (Key, Size, LastModified)."""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except Exception as exc:  # pylint: disable=broad-except
            raise SinkError(explain(exc, self, "list"))

    def list_sets(self, job):
        base = job_key(self.prefix, job)
        groups = {}
        for item in self.list_objects(base):
            rest = item["Key"][len(base):]
            set_id, _slash, name = rest.partition("/")
            if is_set_id(set_id) and name and "/" not in name:
                groups.setdefault(set_id, {})[name] = item
        found = []
        for set_id, objects in groups.items():
            data = sorted(n for n in objects if n.startswith(DATA_PREFIX))
            found.append(StoredSet(set_id, MANIFEST_NAME in objects, data[0] if data else None,
                                   objects[data[0]]["Size"] if data else None,
                                   max(o["LastModified"] for o in objects.values()),
                                   self.set_location(job, set_id)))
        return found

    def read_manifest(self, job, set_id):
        key = set_key(self.prefix, job, set_id) + MANIFEST_NAME
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                # at most one byte past the bound: a writer's 10 GiB "manifest" costs 16 MiB, and loads refuses it
                raw = body.read(manifest_mod.MAX_BYTES + 1)
            finally:
                body.close()
        except Exception as exc:  # pylint: disable=broad-except
            if error_code(exc) in ("NoSuchKey", "404"):
                raise NotFoundError("set %s of job %s has no manifest in %s (incomplete set)"
                                    % (set_id, job, self.describe()))
            raise SinkError(explain(exc, self, "read a manifest from"))
        return manifest_mod.loads(raw, "s3://%s/%s" % (self.bucket, key))

    def open_data(self, job, set_id, data_name):
        key = set_key(self.prefix, job, set_id) + data_name
        try:
            return _S3Body(self, self.client.get_object(Bucket=self.bucket, Key=key)["Body"])
        except Exception as exc:  # pylint: disable=broad-except
            raise SinkError(explain(exc, self, "download %s from" % data_name))

    def delete_set(self, job, set_id):
        keys = [item["Key"] for item in self.list_objects(set_key(self.prefix, job, set_id))]
        self.delete_keys(keys)

    def delete_keys(self, keys):
        """Delete in batches of 1000 (the DeleteObjects limit); manifests go first so no set looks complete."""
        keys = sorted(keys, key=lambda k: not k.endswith("/" + MANIFEST_NAME))
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except Exception as exc:  # pylint: disable=broad-except
                raise SinkError(explain(exc, self, "delete objects from"))
            if response.get("Errors"):
                first = response["Errors"][0]
                raise SinkError("S3 refused to delete %d objects (first: %s: %s)" % (
                    len(response["Errors"]), first.get("Key"), first.get("Message")))


class _S3Body(object):
    """The streaming body of a download, with network errors turned into SinkError."""

    def __init__(self, repo, body):
        self._repo = repo
        self._body = body

    def read(self, size=MIB):
        try:
            return self._body.read(size)
        except Exception as exc:  # pylint: disable=broad-except
            raise SinkError(explain(exc, self._repo, "download from"))

    def close(self):
        self._body.close()
