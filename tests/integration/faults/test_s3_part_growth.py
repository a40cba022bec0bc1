"""S3 part sizes grow with the upload (issue #16 item 14): a fixed part size would cap an object at 10,000 parts
(156 GiB with 16 MiB parts) and fail only after uploading all of it. Shown against moto with a growth step of 2
parts instead of 1,000: moto enforces S3's 5 MiB minimum on every part but the last, as S3 does."""

import contextlib
import hashlib
import os

from fault_helpers import MIB
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository
from engine.repositories.s3 import S3Repository


class RandomSource(object):
    kind = "fake"
    extension = "bin"

    def __init__(self, size, chunk):
        self.size = size
        self.chunk = chunk
        self.digest = hashlib.sha256()

    def check(self):
        pass

    def describe(self):
        return {"fake": True}

    def tools(self):
        return {}

    def verification(self):
        return {}

    def open(self):
        source = self

        class Reader(object):
            left = source.size

            def read(self, size=-1):
                data = os.urandom(min(source.chunk, self.left))
                self.left -= len(data)
                source.digest.update(data)
                return data

        return contextlib.nullcontext(Reader())


def test_parts_grow_by_the_rule_and_the_object_is_intact(moto, s3):
    options = {k: v for k, v in s3.items() if k != "prefix"}
    store = S3Repository(prefix="prod", multipart_chunk_size=5 * MIB, max_concurrency=2, growth_step=2, **options)
    sent = []
    store.client.meta.events.register(
        "before-parameter-build.s3.UploadPart",
        lambda params, **_kw: sent.append((params["PartNumber"], len(params["Body"]))))
    source = RandomSource(53 * MIB + 12345, chunk=1024 * 1024 + 3)

    backup = run_backup(source, Repository([store]), "big", compression="none")

    assert sorted(sent) == [(1, 5 * MIB), (2, 5 * MIB), (3, 10 * MIB), (4, 10 * MIB), (5, 20 * MIB),
                            (6, 3 * MIB + 12345)]
    key = "prod/big/%s/data.bin" % backup["id"]
    head = moto.client().head_object(Bucket=s3["bucket"], Key=key)
    assert head["ETag"].strip('"').endswith("-6")  # one object made of the six parts
    assert head["ContentLength"] == 53 * MIB + 12345
    body = moto.client().get_object(Bucket=s3["bucket"], Key=key)["Body"]
    stored = hashlib.sha256()
    for block in iter(lambda: body.read(MIB), b""):
        stored.update(block)
    assert stored.hexdigest() == source.digest.hexdigest() == backup["sha256"]
