"""Option validation of the SFTP and FTP repositories, module options vs doc fragment, job files (no network)."""

import base64
import datetime
import os
import sys

import pytest

from engine.repositories import ftp as ftp_repository, sftp as sftp_repository
from engine.runner import jobs
from engine.core.errors import ConfigError
from engine.repositories.ftp import FtpRepository
from engine.repositories.remote import join_path, normalise_path, read_password_file, remote_url
from engine.repositories.repository import Repository
from engine.repositories.sftp import SftpRepository, fingerprint

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 6))
PUBLIC_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIKhFdLfm2gW7wuOiEzCEmN85oHX6D2o2pomKckMEcg9r"
PUBLIC_KEY_FINGERPRINT = "SHA256:PcX1ke7lu56GChgzY1i8pTIMSPj7bt9AbN1Dg13rBo4"  # ssh-keygen -lf


def private_file(path, text, mode=0o600):
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.fixture
def password_file(tmp_path):
    return private_file(tmp_path / "password", "s3cret\n")


@pytest.fixture
def sftp(password_file):
    return {"host": "backup.example", "user": "lifeboat", "path": "/srv/backups", "password_file": password_file}


@pytest.fixture
def ftp(password_file):
    return {"host": "ftp.example", "user": "lifeboat", "path": "backups", "password_file": password_file}


def message(options, **kwargs):
    with pytest.raises(ConfigError) as caught:
        Repository.from_options(**dict(options, **kwargs) if kwargs else options)
    return caught.value.msg


def test_store_order_is_local_then_sftp_then_ftp_then_s3(tmp_path, sftp, ftp):
    repository = Repository.from_options(dest=str(tmp_path / "repo"), s3={"bucket": "b"}, sftp=sftp, ftp=ftp)
    assert [store.name for store in repository.stores] == ["local", "sftp", "ftp", "s3"]
    assert repository.locations("app", "20260101T000000Z-abcd") == {
        "local": str(tmp_path / "repo" / "app" / "20260101T000000Z-abcd"),
        "sftp": "sftp://lifeboat@backup.example:22/srv/backups/app/20260101T000000Z-abcd/",
        "ftp": "ftps://lifeboat@ftp.example:21/~/backups/app/20260101T000000Z-abcd/",
        "s3": "s3://b/app/20260101T000000Z-abcd/",
    }


def test_nothing_configured():
    with pytest.raises(ConfigError) as caught:
        Repository.from_options()
    assert "sftp" in caught.value.msg and "ftp" in caught.value.msg


@pytest.mark.parametrize("missing,text", [("host", "sftp.host is required"), ("user", "sftp.user is required"),
                                          ("path", "sftp.path is required")])
def test_sftp_required(sftp, missing, text):
    del sftp[missing]
    assert text in message({"sftp": sftp})


def test_sftp_unknown_option_such_as_an_inline_password(sftp):
    sftp["password"] = "inline"
    msg = message({"sftp": sftp})
    assert "unknown sftp option(s): password" in msg and "password_file" in msg


def test_sftp_needs_a_key_or_a_password(sftp):
    del sftp["password_file"]
    assert "key_file" in message({"sftp": sftp}) and "password_file" in message({"sftp": sftp})


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_secret_files_open_to_group_or_others_are_refused(tmp_path, sftp, ftp, mode):
    path = private_file(tmp_path / "open", "s3cret\n", mode)
    for name, options in (("sftp", sftp), ("ftp", ftp)):
        msg = message({name: dict(options, password_file=path)})
        assert "%s.password_file %s" % (name, path) in msg and "mode %04o" % mode in msg and "chmod 0600" in msg
    msg = message({"sftp": dict(sftp, key_file=path)})
    assert "sftp.key_file" in msg and "chmod 0600" in msg


def test_password_file_missing_or_empty(tmp_path, sftp):
    assert "does not exist" in message({"sftp": dict(sftp, password_file=str(tmp_path / "nope"))})
    empty = private_file(tmp_path / "empty", "\n")
    assert "is empty" in message({"sftp": dict(sftp, password_file=empty)})
    assert "not a regular file" in message({"sftp": dict(sftp, password_file=str(tmp_path))})


def test_password_file_keeps_inner_spaces_and_drops_one_newline(tmp_path):
    assert read_password_file(private_file(tmp_path / "a", " pass word \r\n"), "x") == " pass word "
    assert read_password_file(private_file(tmp_path / "b", "pw"), "x") == "pw"
    assert read_password_file(private_file(tmp_path / "c", "pw\n\n"), "x") == "pw\n"


@pytest.mark.parametrize("value", ["c1:2f:aa:bb", "SHA256:short", "sha256:PcX1ke7lu56GChgzY1i8pTIMSPj7bt9AbN1Dg13rBo4",
                                   "PcX1ke7lu56GChgzY1i8pTIMSPj7bt9AbN1Dg13rBo4"])
def test_host_key_fingerprint_format(sftp, value):
    msg = message({"sftp": dict(sftp, host_key_fingerprint=value)})
    assert "not an OpenSSH SHA256 fingerprint" in msg and "MD5" in msg


def test_fingerprint_pin_accepts_openssh_format(sftp):
    store = Repository.from_options(sftp=dict(sftp, host_key_fingerprint=PUBLIC_KEY_FINGERPRINT)).stores[0]
    assert store.host_key_fingerprint == PUBLIC_KEY_FINGERPRINT


def test_known_hosts_and_pin_are_exclusive_and_known_hosts_must_exist(tmp_path, sftp):
    known = tmp_path / "known_hosts"
    known.write_text("")
    assert "not both" in message({"sftp": dict(sftp, known_hosts_file=str(known),
                                               host_key_fingerprint=PUBLIC_KEY_FINGERPRINT)})
    msg = message({"sftp": dict(sftp, known_hosts_file=str(tmp_path / "missing"))})
    assert "does not exist" in msg and "ssh-keyscan -p 22 backup.example" in msg


def test_fingerprint_matches_ssh_keygen():
    # paramiko is required for sftp (pip install paramiko): a missing package fails this test
    import paramiko  # pylint: disable=import-outside-toplevel
    key = paramiko.Ed25519Key(data=base64.b64decode(PUBLIC_KEY))
    assert fingerprint(key) == PUBLIC_KEY_FINGERPRINT


def test_known_hosts_lookup_uses_bracketed_host_and_port(tmp_path, sftp):
    known = tmp_path / "known_hosts"
    known.write_text("[backup.example]:2222 ssh-ed25519 %s\nbackup.example ssh-ed25519 %s\n"
                     % (PUBLIC_KEY, PUBLIC_KEY))
    store = SftpRepository(**dict(sftp, port=2222, known_hosts_file=str(known)))
    found, name, files = store._known_keys()  # pylint: disable=protected-access
    assert name == "[backup.example]:2222" and list(found) == ["ssh-ed25519"] and files == [str(known)]
    store = SftpRepository(**dict(sftp, port=2200, known_hosts_file=str(known)))
    assert store._known_keys()[0] == {}  # pylint: disable=protected-access


@pytest.mark.parametrize("port", [0, 65536, "ssh"])
def test_port_range(sftp, ftp, port):
    assert "sftp.port" in message({"sftp": dict(sftp, port=port)})
    assert "ftp.port" in message({"ftp": dict(ftp, port=port)})


def test_timeout_positive(sftp, ftp):
    assert "sftp.timeout" in message({"sftp": dict(sftp, timeout=0)})
    assert "ftp.timeout" in message({"ftp": dict(ftp, timeout=-1)})


def test_paramiko_missing_is_a_clear_error(monkeypatch, sftp):
    monkeypatch.setattr(sftp_repository, "HAS_PARAMIKO", False)
    assert "pip install paramiko" in message({"sftp": sftp})


def test_ftp_required_and_tls_options(tmp_path, ftp):
    for missing in ("host", "user", "path", "password_file"):
        options = dict(ftp)
        del options[missing]
        assert "ftp.%s" % missing in message({"ftp": options})
    assert "ftp.ca_file" in message({"ftp": dict(ftp, ca_file=str(tmp_path / "missing.pem"))})
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert "needs ftp.tls: true" in message({"ftp": dict(ftp, ca_file=str(ca), tls=False)})
    store = FtpRepository(**ftp)
    assert store.tls and store.tls_verify and store.port == 21 and store.timeout == 30
    plain = FtpRepository(**dict(ftp, tls=False, port=2121))
    assert plain.describe() == "ftp://lifeboat@ftp.example:2121/~/backups"


@pytest.mark.parametrize("path,root", [("/srv/backups/", "/srv/backups"), ("/srv//b/./c", "/srv/b/c"), ("/", "/"),
                                       ("backups", "backups"), ("./a/b/", "a/b"), (".", ".")])
def test_remote_paths(path, root):
    assert normalise_path(path, "sftp.path") == root


@pytest.mark.parametrize("path", ["", "  ", "../up", "/srv/../etc", None])
def test_remote_paths_refused(path):
    with pytest.raises(ConfigError):
        normalise_path(path, "sftp.path")


def test_remote_urls_and_joins():
    assert join_path(".", "job", "id") == "job/id"
    assert join_path("/", "job") == "/job"
    assert join_path("a/b", "job") == "a/b/job"
    assert remote_url("sftp", "u", "h", 22, "/srv") == "sftp://u@h:22/srv"
    assert remote_url("sftp", "u", "h", 22, "/srv", "j", "i") == "sftp://u@h:22/srv/j/i/"
    assert remote_url("sftp", "u", "h", 22, ".") == "sftp://u@h:22/~/"
    assert remote_url("sftp", "u", "h", 22, ".", "j", "i") == "sftp://u@h:22/~/j/i/"
    assert remote_url("ftp", "u", "h", 21, "b", "j") == "ftp://u@h:21/~/b/j/"
    assert remote_url("sftp", "u", "::1", 22, "/", "j") == "sftp://u@[::1]:22/j/"


def test_ftp_modify_times():
    parse = ftp_repository._parse_modify  # pylint: disable=protected-access
    assert parse("20261122031500") == datetime.datetime(2026, 11, 22, 3, 15, tzinfo=datetime.timezone.utc)
    assert parse("20261122031500.123") == datetime.datetime(2026, 11, 22, 3, 15, tzinfo=datetime.timezone.utc)
    assert parse("") is None and parse("garbage") is None


def test_job_files_accept_sftp_or_ftp_alone(sftp):
    job = jobs.validate({"job": "app", "kind": "sqlite", "path": "/srv/app.db", "sftp": dict(sftp, port=None)})
    assert job["sftp"] == sftp  # unset values dropped
    job = jobs.validate({"job": "app", "kind": "sqlite", "path": "/srv/app.db", "ftp": {"host": "h"}})
    assert job["ftp"] == {"host": "h"}
    with pytest.raises(ConfigError) as caught:
        jobs.validate({"job": "app", "kind": "sqlite", "path": "/srv/app.db", "sftp": "sftp://host/path"})
    assert "sftp must be an object" in caught.value.msg
    with pytest.raises(ConfigError) as caught:
        jobs.validate({"job": "app", "kind": "sqlite", "path": "/srv/app.db"})
    assert "sftp or ftp" in caught.value.msg
    assert jobs.secret_paths({"sftp": sftp}) == []  # a password *file* is a path, not a secret


@pytest.fixture
def collection_modules(tmp_path):
    """module_options and the doc fragment, imported through their collection package (as Ansible does)."""
    link = tmp_path / "ansible_collections" / "lifeboat" / "backup"
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib  # pylint: disable=import-outside-toplevel
        options = importlib.import_module("ansible_collections.lifeboat.backup.plugins.module_utils.module_options")
        fragment = importlib.import_module("ansible_collections.lifeboat.backup.plugins.doc_fragments.repository")
        yield options, fragment
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("ansible_collections.lifeboat")]:
            del sys.modules[name]


def _compare(doc, spec, where):
    assert set(doc) == set(spec), where
    for name, option in spec.items():
        documented = doc[name]
        assert documented.get("type", "str") == option.get("type", "str"), (where, name)
        assert documented.get("default") == option.get("default"), (where, name)
        assert documented.get("required", False) == option.get("required", False), (where, name)
        assert documented.get("choices") == option.get("choices"), (where, name)
        assert documented.get("aliases") == option.get("aliases"), (where, name)
        if "options" in option:
            _compare(documented["suboptions"], option["options"], "%s.%s" % (where, name))


def test_module_options_match_the_doc_fragment(collection_modules):
    import yaml  # pylint: disable=import-outside-toplevel
    options, fragment = collection_modules
    _compare(yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"], options.repository_spec(), "")
    assert options.REQUIRED_ONE_OF == [["dest", "s3", "sftp", "ftp"]]


def test_repository_from_params_drops_unset_suboptions(collection_modules, password_file):
    options, _fragment = collection_modules
    params = {"dest": None, "s3": None, "ftp": None, "sftp": {
        "host": "h", "port": 2222, "user": "u", "path": "p", "key_file": None, "password_file": password_file,
        "known_hosts_file": None, "host_key_fingerprint": "", "timeout": 30}}
    repository = options.repository_from_params(params)
    assert [store.name for store in repository.stores] == ["sftp"]
    assert repository.stores[0].describe() == "sftp://u@h:2222/~/p"
