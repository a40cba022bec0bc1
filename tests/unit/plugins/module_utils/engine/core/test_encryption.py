"""age encryption stages of the engine: fingerprints, recipient checks, round trip, clear errors."""

import contextlib
import io
import os
import shutil
import subprocess

import pytest

from engine.core import codecs
from engine.pipeline.backup import run_backup
from engine.core.errors import ConfigError, IntegrityError, LifeboatError, ToolError
from engine.repositories.local import LocalRepository
from engine.repositories.repository import Repository
from engine.pipeline.restore import fetch_to_file, find_set
from engine.core.streams import iter_chunks


def keygen(path):
    if not shutil.which("age-keygen"):
        pytest.fail("age-keygen is required (Debian/Ubuntu: apt-get install age)")
    subprocess.run(["age-keygen", "-o", str(path)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(str(path)) as handle:
        return [line.split(": ", 1)[1].strip() for line in handle if line.startswith("# public key: ")][0]


def read_all(reader):
    return b"".join(iter_chunks(reader))


class BytesSource(object):
    kind = "fake"
    extension = "bin"

    def __init__(self, data):
        self.data = data

    def check(self):
        pass

    def describe(self):
        return {"fake": True}

    def tools(self):
        return {}

    def verification(self):
        return {}

    @contextlib.contextmanager
    def open(self):
        yield io.BytesIO(self.data)


def test_fingerprint_is_stable_short_and_not_the_key():
    recipient = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"
    fingerprint = codecs.recipient_fingerprint(recipient)
    assert fingerprint == codecs.recipient_fingerprint(recipient + "\n")
    assert fingerprint.startswith("sha256:") and len(fingerprint) == len("sha256:") + 16
    assert recipient not in fingerprint and recipient[4:20] not in fingerprint
    assert fingerprint != codecs.recipient_fingerprint(recipient[:-1] + "x")


@pytest.mark.parametrize("bad", ["", "AGE-SECRET-KEY-1ABC", "age", "-----BEGIN OPENSSH PRIVATE KEY-----"])
def test_non_public_keys_are_refused_without_echoing_them(bad):
    with pytest.raises(ConfigError) as info:
        codecs.validate_recipients([bad + "0123456789012345678901234567890"])
    assert "age_recipients" in info.value.msg
    assert "0123456789012345678901234567890" not in info.value.msg  # a pasted secret key is not echoed whole


def test_round_trip_and_wrong_missing_identity(tmp_path):
    public = keygen(tmp_path / "id.txt")
    keygen(tmp_path / "other.txt")
    plain = os.urandom(300000) + b"tail"
    encrypted = read_all(codecs.encrypt_reader(io.BytesIO(plain), [public]))
    assert encrypted.startswith(b"age-encryption.org/v1\n") and plain[:64] not in encrypted
    assert read_all(codecs.decrypt_reader(io.BytesIO(encrypted), str(tmp_path / "id.txt"))) == plain

    with pytest.raises(ConfigError) as info:
        read_all(codecs.decrypt_reader(io.BytesIO(encrypted), str(tmp_path / "other.txt")))
    assert "does not match any recipient" in info.value.msg
    with pytest.raises(ConfigError) as info:
        codecs.decrypt_reader(io.BytesIO(encrypted), None)
    assert "age_identity_file" in info.value.msg
    with pytest.raises(ConfigError) as info:
        codecs.decrypt_reader(io.BytesIO(encrypted), str(tmp_path / "missing.txt"))
    assert "missing.txt" in info.value.msg and "does not exist" in info.value.msg
    # Damaged ciphertext never decodes silently.
    damaged = encrypted[:-100] + bytes(100)
    with pytest.raises(LifeboatError):
        read_all(codecs.decrypt_reader(io.BytesIO(damaged), str(tmp_path / "id.txt")))


def test_pipeline_records_fingerprints_and_restores(tmp_path):
    public = keygen(tmp_path / "id.txt")
    repository = Repository([LocalRepository(str(tmp_path / "repo"))])
    data = b"secret rows\n" * 50000
    backup = run_backup(BytesSource(data), repository, "enc", encryption={"age_recipients": [public]})
    manifest = backup["manifest"]
    assert manifest["data"] == "data.bin.zst.age"
    assert manifest["encryption"] == {"algorithm": "age", "recipients": [codecs.recipient_fingerprint(public)]}
    with open(os.path.join(backup["location"]["local"], "manifest.json")) as handle:
        assert public not in handle.read()
    backup_set = find_set(repository, "enc", "fake")
    out = io.BytesIO()
    assert fetch_to_file(repository, "enc", backup_set, out, str(tmp_path / "id.txt")) == len(data)
    assert out.getvalue() == data
    # A truncated encrypted artifact: age fails first, the stored bytes are then checked: sha256 mismatch.
    path = os.path.join(backup["location"]["local"], manifest["data"])
    with open(path, "r+b") as handle:
        handle.truncate(manifest["size"] // 2)
    with pytest.raises(IntegrityError) as info:
        fetch_to_file(repository, "enc", backup_set, io.BytesIO(), str(tmp_path / "id.txt"))
    assert "sha256 mismatch" in info.value.msg


def wrong_identity_set(tmp_path):
    """A zstd + age set encrypted to two recipients, and the repository it is in."""
    keys = [keygen(tmp_path / "id1.txt"), keygen(tmp_path / "id2.txt")]
    repository = Repository([LocalRepository(str(tmp_path / "repo"))])
    run_backup(BytesSource(os.urandom(200000) * 3), repository, "enc", encryption={"age_recipients": keys})
    return repository, find_set(repository, "enc", "fake"), keys


def test_wrong_identity_says_so_and_lists_the_recipients_never_zstd(tmp_path):
    """age's refusal is the cause: it is not buried under the decompressor's complaint about the missing input."""
    repository, backup_set, keys = wrong_identity_set(tmp_path)
    other = keygen(tmp_path / "other.txt")
    with pytest.raises(ConfigError) as info:
        fetch_to_file(repository, "enc", backup_set, io.BytesIO(), str(tmp_path / "other.txt"))
    message = info.value.msg
    assert "does not match any recipient" in message and "zstd" not in message, message
    for fingerprint in backup_set.manifest["encryption"]["recipients"]:
        assert fingerprint in message
    assert codecs.recipient_fingerprint(other) in message  # the identity's own public key fingerprint
    with open(str(tmp_path / "other.txt")) as handle:
        secret = [line.strip() for line in handle if line.startswith("AGE-SECRET-KEY-")][0]
    for needle in keys + [other, secret]:
        assert needle not in message


def test_wrong_identity_fails_before_age_runs(tmp_path, monkeypatch):
    """A native age identity is compared with the manifest's fingerprints first: no download is decrypted."""
    repository, backup_set, _keys = wrong_identity_set(tmp_path)
    keygen(tmp_path / "other.txt")
    started = []
    real = codecs.ProcessReader

    def recording(argv, *args, **kwargs):
        started.append(argv[0])
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(codecs, "ProcessReader", recording)
    with pytest.raises(codecs.IdentityMismatchError):
        fetch_to_file(repository, "enc", backup_set, io.BytesIO(), str(tmp_path / "other.txt"))
    assert "age" not in started
    # The right identity still passes the same check (it holds both keys' lines: one matches).
    with open(str(tmp_path / "both.txt"), "w") as out:
        for name in ("other.txt", "id2.txt"):
            out.write(open(str(tmp_path / name)).read())
    assert fetch_to_file(repository, "enc", backup_set, io.BytesIO(), str(tmp_path / "both.txt")) == 600000


def test_ssh_identity_that_matches_nothing_is_named_by_age_refusal(tmp_path):
    """SSH identities are not compared up front (no key is parsed here); age's own refusal gives the same message."""
    if not shutil.which("ssh-keygen"):
        pytest.fail("ssh-keygen is required (Debian/Ubuntu: apt-get install openssh-client)")
    repository, backup_set, _keys = wrong_identity_set(tmp_path)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ssh_id")], check=True)
    with pytest.raises(ConfigError) as info:
        fetch_to_file(repository, "enc", backup_set, io.BytesIO(), str(tmp_path / "ssh_id"))
    assert "does not match any recipient" in info.value.msg and "zstd" not in info.value.msg, info.value.msg
    assert all(f in info.value.msg for f in backup_set.manifest["encryption"]["recipients"])
    assert codecs.identity_fingerprints(str(tmp_path / "ssh_id")) is None  # this path, not the check up front


def test_damaged_ciphertext_reports_age_not_zstd(tmp_path):
    public = keygen(tmp_path / "id.txt")
    sealed = read_all(codecs.encrypt_reader(codecs.compress_reader(io.BytesIO(os.urandom(300000)), "zstd", 3),
                                            [public]))
    damaged = sealed[:-100] + bytes(100)
    with pytest.raises(ToolError) as info:
        read_all(codecs.decompress_reader(codecs.decrypt_reader(io.BytesIO(damaged), str(tmp_path / "id.txt")), "zstd"))
    assert info.value.msg.startswith("age decryption failed") and "zstd" not in info.value.msg, info.value.msg
