"""A planted manifest.json far beyond manifest.MAX_BYTES in a local directory and in S3: read with bounded memory
and refused as damage (tests/support/oversized_manifest.py). FTP and SFTP have the same case in their folders."""

import os

from engine.repositories.repository import Repository
from support.oversized_manifest import JOB, OVERSIZED, assert_refused_within_bound, plant_set


def test_local_manifest_is_read_up_to_the_bound(tmp_path):
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    set_id = plant_set(repository)
    with open(os.path.join(str(tmp_path / "repo"), JOB, set_id, "manifest.json"), "wb") as handle:
        handle.write(OVERSIZED)
    assert_refused_within_bound(repository, set_id)


def test_s3_manifest_is_read_up_to_the_bound(moto, s3):
    repository = Repository.from_options(s3=s3)
    set_id = plant_set(repository)
    moto.client().put_object(Bucket=s3["bucket"], Key="prod/%s/%s/manifest.json" % (JOB, set_id), Body=OVERSIZED)
    assert_refused_within_bound(repository, set_id)
