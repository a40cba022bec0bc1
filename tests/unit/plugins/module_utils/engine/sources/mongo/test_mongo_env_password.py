"""MongoDB's password may come from the environment (LIFEBOAT_MONGO_PASSWORD), as PostgreSQL's PGPASSWORD and Redis's
REDISCLI_AUTH do, so a job file (and the Kubernetes Secret that carries it, group-readable in the pod) never holds it."""
from engine.sources.mongo import kind
from engine.sources.mongo.format import PASSWORD_ENV, redact_uri, scrub, with_env_password

ENV = {PASSWORD_ENV: "p@ss:w/rd%"}


def test_the_password_fills_a_user_without_one_percent_encoded():
    uri = with_env_password("mongodb://backup@db1:27017/?authSource=admin", ENV)
    assert uri == "mongodb://backup:p%40ss%3Aw%2Frd%25@db1:27017/?authSource=admin"
    # never shown: not in the redacted form, scrubbed from tool output (raw and encoded)
    assert "p%40ss" not in redact_uri(uri) and "p@ss" not in redact_uri(uri)
    assert "p@ss:w/rd%" not in scrub("auth failed for p@ss:w/rd% on " + uri, uri)


def test_a_password_in_the_uri_wins_and_a_uri_without_user_is_unchanged():
    assert with_env_password("mongodb://backup:inline@db1/", ENV) == "mongodb://backup:inline@db1/"
    assert with_env_password("mongodb://db1:27017/", ENV) == "mongodb://db1:27017/"
    assert with_env_password("mongodb+srv://backup@cluster0.example.net/", ENV) == \
        "mongodb+srv://backup:p%40ss%3Aw%2Frd%25@cluster0.example.net/"


def test_no_environment_no_change():
    assert with_env_password("mongodb://backup@db1/", {}) == "mongodb://backup@db1/"
    assert with_env_password(None, ENV) is None


def test_the_kind_reads_it_for_the_backup(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    source = kind.source_from_options({"mongo_uri": "mongodb://backup@127.0.0.1:1/"})
    assert source.uri == "mongodb://backup:s3cret@127.0.0.1:1/"
