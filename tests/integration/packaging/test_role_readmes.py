"""Every role has a README as Galaxy shows it (galaxy-importer refuses a collection whose role lacks one): purpose,
requirements, a table of the variables of its `main` entry point that matches meta/argument_specs.yml exactly,
an example play and tags. Variables named anywhere in it must exist, so a renamed variable cannot linger there."""

import os
import re

import pytest
import yaml

from packaging_helpers import REPO

ROLES = sorted(os.listdir(os.path.join(REPO, "roles")))
SECTIONS = ["## Requirements", "## Role variables", "## Example playbook", "## Tags", "## License"]


def specs(role):
    with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")) as handle:
        return yaml.safe_load(handle)["argument_specs"]


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_has_the_sections_and_a_complete_variables_table(role):
    path = os.path.join(REPO, "roles", role, "README.md")
    assert os.path.isfile(path), "%s has no README.md" % role
    text = open(path).read()
    assert text.startswith("# lifeboat.backup.%s\n" % role)
    positions = [text.find(section) for section in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), positions

    table = re.findall(r"^\| `([a-z0-9_]+)` \|", text, re.MULTILINE)
    assert table == list(specs(role)["main"]["options"]), "README table differs from meta/argument_specs.yml"

    example = text[text.index("## Example playbook"):text.index("## Tags")]
    play = yaml.safe_load(example.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert play[0]["hosts"] and any("lifeboat.backup.%s" % role in str(item) for item in play)


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_names_only_variables_that_exist(role):
    known = set()
    for entry in specs(role).values():
        known.update(entry.get("options", {}))
    modules = {name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules"))}
    text = open(os.path.join(REPO, "roles", role, "README.md")).read()
    named = set(re.findall(r"\b%s_[a-z0-9_]+" % role, text)) - modules - {"%s_iam_policy" % role}
    assert named <= known, sorted(named - known)
