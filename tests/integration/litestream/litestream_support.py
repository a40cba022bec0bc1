"""Helpers shared by the Litestream tests."""

import os


def litestream_env(env_file=None):
    """Environment for the litestream binary: the credentials from the module's env file (parsed as systemd
    would), without AWS_CA_BUNDLE (this machine's bundle makes Litestream fail with 'unable to add custom RootCAs')."""
    env = {key: value for key, value in os.environ.items() if key != "AWS_CA_BUNDLE"}
    if env_file:
        with open(env_file) as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                name, value = line.split("=", 1)
                if value.startswith('"') and value.endswith('"'):
                    value = value[1:-1].replace('\\"', '"').replace("\\$", "$").replace("\\`", "`").replace("\\\\", "\\")
                env[name] = value
    return env
