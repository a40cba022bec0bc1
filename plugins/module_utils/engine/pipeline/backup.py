"""The backup pipeline: source -> compress -> encrypt -> sha256 -> every sink -> manifest last.

One pass, bounded memory. With two sinks the data is produced once and written to both; if one
sink fails the other still completes its set, and the run reports failure.
"""

import contextlib
import threading
import time

from ..core import manifest as manifest_mod
from ..core.codecs import (compress_reader, encrypt_reader, recipient_fingerprint, resolve_level, resolve_threads,
                           zstd_backend)
from ..core.errors import LifeboatError, SinkError
from ..core.naming import data_name, new_set_id, utcnow, validate_job
from ..core.streams import CHUNK, CountingReader, HashingReader, iter_chunks


class Progress(object):
    """Receives progress callbacks; the runner shows them on a terminal. Default: silent."""

    def stage(self, name):
        pass

    def advance(self, stored_bytes):
        pass


class Preflight(object):
    """A repository's preflight run in a daemon thread (an unreachable endpoint retrying for a minute never
    holds up the exit of a run that failed for another reason). `wait` returns the repository's failure
    message (SinkError: the run goes on with the other repositories) or None; anything else it raised (a
    ConfigError such as an unreadable key file, or a bug) is raised again in the caller's thread, failing
    the run as it would have without the thread."""

    def __init__(self, store):
        self.store = store
        self._error = None
        self._exception = None
        self._thread = threading.Thread(target=self._run, name="preflight-%s" % store.name)
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        try:
            self.store.preflight()
        except SinkError as exc:
            self._error = exc.msg
        except BaseException as exc:  # pylint: disable=broad-except
            self._exception = exc

    def wait(self):
        self._thread.join()
        if self._exception is not None:
            raise self._exception
        return self._error


def plan(source, repository, job, compression="zstd", encryption=None):
    """What a run would write, without writing: used by check mode."""
    validate_job(job)
    resolve_level(compression, None)
    source.check()
    name = data_name(source.extension, compression, bool(encryption and encryption.get("age_recipients")))
    return {
        "job": job,
        "kind": source.kind,
        "data": name,
        "source": source.describe(),
        "location": {store.name: store.set_location(job, "<new set id>") for store in repository.stores},
    }


def run_backup(source, repository, job, compression="zstd", compression_level=None, encryption=None, tags=None,
               progress=None, threads=0):
    """Run one backup; returns the `backup` result dict. Raises LifeboatError on any failure."""
    validate_job(job)
    progress = progress or Progress()
    level = resolve_level(compression, compression_level)
    threads = resolve_threads(threads)  # before the source is opened: a bad option costs no snapshot
    recipients = list((encryption or {}).get("age_recipients") or [])
    # Repositories are checked (reachable, bucket exists) while the source is checked and opened: on a
    # slow link or a cold client that costs no wall time. Nothing is written before both are known good.
    preflights = [Preflight(store) for store in repository.stores]
    source.check()  # validated before anything is written anywhere

    started = utcnow()
    set_id = new_set_id(started)
    name = data_name(source.extension, compression, bool(recipients))
    writers = {}
    failures = {}
    clock = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            progress.stage("dump")
            raw = stack.enter_context(source.open())
            # The compressor (and encryptor) start on the first bytes while the repositories still answer.
            counted = CountingReader(raw)
            stream = compress_reader(counted, compression, level, threads)
            if hasattr(stream, "close"):
                stack.callback(stream.close)  # stops a compressor process if the run fails
            if recipients:
                stream = encrypt_reader(stream, recipients)
                stack.callback(stream.close)
            stored = HashingReader(stream)
            for preflight in preflights:
                error = preflight.wait()
                if error is not None:
                    failures[preflight.store.name] = error
                    continue
                try:
                    writers[preflight.store.name] = preflight.store.begin_set(job, set_id, name)
                except SinkError as exc:
                    failures[preflight.store.name] = exc.msg
            if not writers:
                raise SinkError("backup of job %s not written: %s" % (job, "; ".join(failures.values())),
                                failures=failures)
            progress.stage("stream")
            for chunk in iter_chunks(stored, CHUNK):
                for store_name in list(writers):
                    try:
                        writers[store_name].write(chunk)
                    except SinkError as exc:
                        failures[store_name] = exc.msg
                        writers.pop(store_name).abort()
                if not writers:
                    raise SinkError("backup of job %s failed in every repository: %s"
                                    % (job, "; ".join(failures.values())))
                progress.advance(stored.bytes)
        finished = utcnow()
        document = manifest_mod.build(
            set_id=set_id, job=job, kind=source.kind, data=name, source=source.describe(), started=started,
            finished=finished, raw_size=counted.bytes, size=stored.bytes, sha256=stored.hexdigest(),
            compression={"algorithm": compression, "level": level},
            encryption={"algorithm": "age", "recipients": [recipient_fingerprint(r) for r in recipients]}
            if recipients else None,
            tools=dict(source.tools(), **({"zstd": zstd_backend()} if compression == "zstd" else {})),
            verification=source.verification(), tags=tags)
        document["duration_seconds"] = round(time.monotonic() - clock, 3)
        payload = manifest_mod.dumps(document)
        progress.stage("commit")
        for store_name in list(writers):
            try:
                writers[store_name].commit(payload)
            except SinkError as exc:
                failures[store_name] = exc.msg
                writers.pop(store_name).abort()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise

    result = {
        "id": set_id,
        "job": job,
        "kind": source.kind,
        "location": repository.locations(job, set_id, names=set(writers)),
        "size": document["size"],
        "sha256": document["sha256"],
        "manifest": document,
    }
    if failures:
        raise SinkError("backup %s of job %s is complete in %s but failed in %s: %s" % (
            set_id, job, ", ".join(sorted(writers)), ", ".join(sorted(failures)), "; ".join(failures.values())),
            backup=result, failures=failures)
    return result


def is_partial_failure(exc):
    """True when a run failed in some repositories but left a complete set in another."""
    return isinstance(exc, LifeboatError) and "backup" in exc.details
