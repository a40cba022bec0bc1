"""The changelog, the ecosystem's way (antsibull-changelog): the pending fragments and changelogs/changelog.yaml lint
clean (the same checks as the `changelog` test of ansible-test sanity), and CHANGELOG.md is what
`antsibull-changelog generate` makes of changelog.yaml, so nobody edits it by hand."""

import os
import shutil

from packaging_helpers import REPO, run, tool

IGNORE = shutil.ignore_patterns(".git", ".demo", ".ansible", "bench", "tests", "__pycache__", "*.tar.gz", "build")


def test_fragments_and_changelog_yaml_lint_clean():
    proc = run([tool("antsibull-changelog"), "lint"])
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout
    proc = run([tool("antsibull-changelog"), "lint-changelog-yaml", "changelogs/changelog.yaml"])
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout


def test_changelog_md_is_generated_from_changelog_yaml(tmp_path):
    copy = tmp_path / "collection"
    shutil.copytree(REPO, str(copy), ignore=IGNORE, symlinks=True)
    proc = run([tool("antsibull-changelog"), "generate"], cwd=str(copy))
    assert proc.returncode == 0, proc.stdout
    assert (copy / "CHANGELOG.md").read_text() == open(os.path.join(REPO, "CHANGELOG.md")).read(), (
        "CHANGELOG.md differs from what `antsibull-changelog generate` writes; run it instead of editing the file")
