"""galaxy-importer, the check Galaxy and Automation Hub run on upload, accepts the built tarball without an error
or a warning. ansible-test inside the importer needs a container, so it is off here (`ansible-test sanity` runs
separately through scripts/test.sh); its ansible-lint, ansible-doc, README, changelog and execution environment
checks run. The importer lints offline, so the dependency collections resolve from the installed `ansible`
package, as they would after `ansible-galaxy collection install` pulled the dependencies galaxy.yml declares."""

import json
import os
import sys

from packaging_helpers import REPO, run

CONFIG = """\
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
RUN_ANSIBLE_DOC = True
CHECK_CHANGELOG = True
LOG_LEVEL_MAIN = INFO
ANSIBLE_LOCAL_TMP = %(tmp)s
"""


def test_galaxy_importer_accepts_the_tarball_without_errors_or_warnings(tarball, tmp_path):
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text(CONFIG % {"tmp": tmp_path / "ansible-tmp"})
    env = dict(os.environ, GALAXY_IMPORTER_CONFIG=str(config))
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    proc = run([sys.executable, "-m", "galaxy_importer.main", tarball], cwd=str(tmp_path), env=env, timeout=900)

    assert proc.returncode == 0, proc.stdout
    assert "Importer processing completed successfully" in proc.stdout, proc.stdout
    problems = [line for line in proc.stdout.splitlines() if line.startswith(("ERROR", "WARNING"))]
    assert problems == [], "\n".join(problems)

    result = json.loads((tmp_path / "importer_result.json").read_text())
    roles = sorted(item["name"] for item in result["contents"] if item["content_type"] == "role")
    assert roles == sorted(os.listdir(os.path.join(REPO, "roles")))
    assert result["metadata"]["dependencies"] == {"amazon.aws": ">=10.0.0,<11.0.0",
                                                  "community.aws": ">=10.0.0,<11.0.0"}
