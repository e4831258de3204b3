"""deploy/compose/docker-compose.yml and the proxy's configuration, read without docker: the properties that keep the
stack safe and that `make docker-test` (which runs it) would only notice by their effects, if at all. The same body
limit for proxy and replicas, nothing published but the proxy, a database no one else reaches, a format Compose v1
reads, and variables the service knows."""

from __future__ import annotations

import functools
import re

import yaml
from sqlalchemy.engine import make_url

from cds_service.service.storage import normalise_url

from .deployment_files import DEPLOY, ROOT, known_settings

STACK = DEPLOY / "compose" / "docker-compose.yml"
NGINX = DEPLOY / "nginx"
REPLICAS = ("cds-a", "cds-b")
ENVIRONMENT = {  # what an operator's .env holds (env.example, filled in)
    "CDS_PUBLIC_URL": "https://cds.example.org",
    "POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef",
    "CDS_HASH_SECRET": "f" * 64,
}
# Service keys of Compose file format 2.4 (docker-compose v1's schema) that Compose v2 reads too; `deploy`,
# `profiles`, `secrets`, `configs`, `pull_policy` and the like are not among them.
FORMAT_2_4_SERVICE_KEYS = frozenset(
    "build cap_add cap_drop cgroup_parent command container_name cpu_count cpu_percent cpu_shares cpu_quota "
    "cpu_period cpu_rt_period cpu_rt_runtime cpus cpuset depends_on device_cgroup_rules devices dns dns_opt "
    "dns_search domainname entrypoint env_file environment expose extends external_links extra_hosts group_add "
    "healthcheck hostname image init ipc isolation labels links logging mac_address mem_limit mem_reservation "
    "mem_swappiness memswap_limit network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform "
    "ports privileged read_only restart runtime scale security_opt shm_size stdin_open stop_grace_period "
    "stop_signal storage_opt sysctls tmpfs tty ulimits user userns_mode volumes volume_driver volumes_from "
    "working_dir".split()
)


@functools.cache
def stack() -> dict:
    return yaml.safe_load(STACK.read_text(encoding="utf-8"))


def interpolate(value: str, environment: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, as both Compose versions read them."""
    def one(found: re.Match) -> str:
        name, operator, argument = found.group(1), found.group(2), found.group(3)
        if environment.get(name):
            return environment[name]
        if operator == ":?":
            raise AssertionError(f"{name} is required: {argument}")
        return argument or ""

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, str(value))


def service(name: str) -> dict:
    return stack()["services"][name]


def test_the_file_is_format_2_4_which_compose_v1_and_v2_both_read():
    assert stack()["version"] == "2.4"
    assert set(stack()) - {"version", "services", "networks", "volumes"} == {"x-replica"}
    for name, definition in stack()["services"].items():
        extra = set(definition) - FORMAT_2_4_SERVICE_KEYS
        assert not extra, f"{name}: {sorted(extra)} are not Compose file format 2.4"


def test_the_two_replicas_are_the_same_service():
    assert service("cds-a") == service("cds-b")


def test_only_the_proxy_publishes_a_port():
    published = {name for name, definition in stack()["services"].items() if definition.get("ports")}
    assert published == {"proxy"}
    # By default on loopback only, until TLS is in front.
    assert all(interpolate(port, {}).startswith("127.0.0.1:") for port in service("proxy")["ports"])


def test_the_database_is_on_an_internal_network_with_the_replicas_only():
    assert stack()["networks"]["backend"]["internal"] is True
    on_backend = {name for name, d in stack()["services"].items() if "backend" in d.get("networks", [])}
    assert on_backend == {"postgres", *REPLICAS}
    assert service("postgres")["networks"] == ["backend"]
    assert service("proxy")["networks"] == ["edge"]


def test_every_container_is_read_only_without_capabilities():
    for name, definition in stack()["services"].items():
        assert definition["read_only"] is True, name
        assert definition["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in definition["security_opt"], name
        assert any(t.startswith("/tmp") for t in definition["tmpfs"]), name
    # gunicorn's control socket lives under $HOME, the image's /home/cds (uid 10001).
    assert "/home/cds:uid=10001,gid=10001,mode=0700" in service("cds-a")["tmpfs"]


def test_the_proxy_and_the_replicas_share_one_body_limit():
    replica = service("cds-a")["environment"]["CDS_MAX_BODY_BYTES"]
    assert service("proxy")["environment"]["CDS_MAX_BODY_BYTES"] == replica
    assert interpolate(replica, {}) == "16777216"  # the service's own default (settings.max_body_bytes)
    assert "client_max_body_size @CDS_MAX_BODY_BYTES@;" in (NGINX / "nginx.conf.template").read_text()


def test_the_proxy_sends_to_both_replicas_on_their_port():
    upstreams = service("proxy")["environment"]["PROXY_UPSTREAMS"].split()
    assert upstreams == [f"{name}:8080" for name in REPLICAS]
    assert set(REPLICAS) <= set(service("proxy")["depends_on"])


def test_the_proxy_waits_longer_than_gunicorn_lets_a_call_run():
    proxy_read = int(interpolate(service("proxy")["environment"]["PROXY_READ_TIMEOUT"], {}))
    gunicorn = int(interpolate(service("cds-a")["environment"].get("GUNICORN_TIMEOUT", "30"), {}))
    assert proxy_read > gunicorn


def test_every_placeholder_of_the_proxy_configuration_is_rendered_by_its_entry_point():
    entrypoint = (NGINX / "entrypoint.sh").read_text()
    rendered = set(re.findall(r"s\|@([A-Z_]+)@\|", entrypoint))
    for template in ("nginx.conf.template", "tls.conf.template"):
        used = set(re.findall(r"@([A-Z_]+)@", (NGINX / template).read_text()))
        assert used <= rendered, f"{template}: {sorted(used - rendered)} would reach nginx as written"


def test_the_replicas_database_url_names_the_stacks_postgresql():
    environment = service("cds-a")["environment"]
    url = make_url(normalise_url(interpolate(environment["CDS_DATABASE_URL"], ENVIRONMENT)))
    postgres = {k: interpolate(v, ENVIRONMENT) for k, v in service("postgres")["environment"].items()}
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]
    )
    assert service("cds-a")["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_secrets_and_the_public_url_must_be_set():
    environment = service("cds-a")["environment"]
    for name in ("CDS_PUBLIC_URL", "CDS_HASH_SECRET"):
        assert ":?" in environment[name], f"{name} must have no default: the stack refuses to start without it"
    assert ":?" in service("postgres")["environment"]["POSTGRES_PASSWORD"]


def test_every_variable_the_replicas_get_is_a_setting_the_service_reads():
    unknown = set(service("cds-a")["environment"]) - known_settings()
    assert not unknown, f"not read by the service or its gunicorn configuration: {sorted(unknown)}"


def test_the_env_example_sets_what_the_stack_requires():
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "compose" / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    required = set(re.findall(r"\$\{([A-Z_]+):\?", STACK.read_text()))
    assert required <= set(example)
    # The secrets are left empty: an operator who copies the file without filling it in is refused at `up`.
    assert example["POSTGRES_PASSWORD"] == "" and example["CDS_HASH_SECRET"] == ""


def test_the_development_stack_is_still_there_and_says_what_it_is():
    development = (ROOT / "docker-compose.yml").read_text()
    assert development.startswith("# DEVELOPMENT STACK")
    assert "deploy/compose/docker-compose.yml" in development
