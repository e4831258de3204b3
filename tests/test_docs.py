"""The documentation a newcomer follows matches what the code does."""

import re

from cds_service.service.settings import ENVIRONMENT_VARIABLES

from .conftest import ROOT


def test_every_environment_variable_is_documented_for_deployment():
    text = (ROOT / "docs" / "docker.md").read_text()
    missing = [name for name in ENVIRONMENT_VARIABLES if f"`{name}`" not in text]
    assert not missing, f"docs/docker.md does not document {missing}"


def test_readme_configuration_rows_say_what_the_code_says():
    rows = re.findall(r"^\| `(CDS_[A-Z_]+)` \| (.+?) \| (.+?) \|$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert rows, "the README has a configuration table"
    for name, meaning, default in rows:
        assert name in ENVIRONMENT_VARIABLES, f"README documents {name}, which the service does not read"
        assert (meaning, default) == ENVIRONMENT_VARIABLES[name], f"README's row for {name} differs from settings.py"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", text):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
