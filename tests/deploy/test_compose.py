"""deploy/compose.yaml and deploy/Dockerfile, without a Docker engine.

The compose file is validated against the Compose Specification's JSON Schema as shipped in
the ``check-jsonschema`` package (its ``vendor.compose-spec`` builtin schema, Apache-2.0, from
the compose-spec project): unknown keys, wrong types and malformed services are refused. The
tests then hold what the schema cannot know: the services a deployment needs, health checks,
start order, ports on 127.0.0.1 only, mounts of files that exist, and the wiring between the
workers, Prometheus and Grafana.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from typing import Any

import pytest
from deploy_support import DEPLOY, PROMETHEUS, load_yaml, need_module

COMPOSE = DEPLOY / "compose.yaml"
WORKERS = ("worker-1", "worker-2")
LONG_RUNNING = ("kafka", *WORKERS, "postgres", "prometheus", "grafana")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


@pytest.fixture(scope="module")
def validator() -> Any:
    need_module("check_jsonschema")
    jsonschema = need_module("jsonschema")
    text = (importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
            / "compose-spec.json").read_text("utf-8")
    schema = json.loads(text)
    # "$schema": "https://json-schema.org/draft-07/schema" (without the "#" jsonschema keys
    # its meta-schemas by), so the draft is chosen here rather than looked up.
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


class TestSchema:
    def test_compose_file_matches_the_compose_specification(
            self, validator: Any, compose: dict[str, Any]) -> None:
        assert errors(validator, compose) == []

    @pytest.mark.parametrize("damage", ["unknown_key", "wrong_type", "bad_depends_on"])
    def test_the_schema_check_refuses_a_broken_file(
            self, validator: Any, compose: dict[str, Any], damage: str) -> None:
        broken = copy.deepcopy(compose)
        service = broken["services"]["worker-1"]
        if damage == "unknown_key":
            service["helthcheck"] = service.pop("healthcheck")
        elif damage == "wrong_type":
            service["ports"] = "6066:6066"
        else:
            service["depends_on"]["kafka"]["condition"] = "service_ready"
        assert errors(validator, broken)


class TestServices:
    def test_the_stack_has_every_part(self, compose: dict[str, Any]) -> None:
        assert set(compose["services"]) == {*LONG_RUNNING, "topic-init"}

    def test_long_running_services_have_health_checks(self, compose: dict[str, Any]) -> None:
        for name in LONG_RUNNING:
            check = compose["services"][name].get("healthcheck")
            assert check and check["test"][0] in {"CMD", "CMD-SHELL"}, name
            assert compose["services"][name].get("restart") == "unless-stopped", name

    def test_ports_are_published_on_loopback_only(self, compose: dict[str, Any]) -> None:
        for name, service in compose["services"].items():
            for port in service.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"

    def test_bind_mounts_exist(self, compose: dict[str, Any]) -> None:
        for name, service in compose["services"].items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), f"{name}: {source}"
                else:
                    assert source in compose["volumes"], f"{name}: {source}"

    def test_kafka_is_a_single_kraft_node(self, compose: dict[str, Any]) -> None:
        env = compose["services"]["kafka"]["environment"]
        assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
        assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
            assert env[key] == 1, key
        assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == 0


class TestWorkers:
    def test_workers_start_after_kafka_and_the_topics(self, compose: dict[str, Any]) -> None:
        for name in WORKERS:
            depends = compose["services"][name]["depends_on"]
            assert depends["kafka"]["condition"] == "service_healthy"
            assert depends["topic-init"]["condition"] == "service_completed_successfully"
        init = compose["services"]["topic-init"]
        assert init["restart"] == "no"
        assert "ensure_topics(" in init["command"][0] and "topic_specs(" in init["command"][0]

    def test_workers_are_built_from_the_dockerfile(self, compose: dict[str, Any]) -> None:
        for name in (*WORKERS, "topic-init"):
            build = compose["services"][name]["build"]
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]) \
                .resolve() == DEPLOY / "Dockerfile"
            assert compose["services"][name]["image"] == "closedloop:dev"

    def test_each_worker_has_its_own_data_dir_and_stops_gracefully(
            self, compose: dict[str, Any]) -> None:
        volumes = [compose["services"][name]["volumes"] for name in WORKERS]
        assert all(v[0].endswith(":/var/lib/closedloop") for v in volumes)
        assert len({v[0] for v in volumes}) == len(WORKERS)
        for name in WORKERS:
            service = compose["services"][name]
            assert service["command"][:3] == ["worker", "--clock", "wall"]
            assert service["stop_signal"] == "SIGTERM"
            assert service["stop_grace_period"] == "60s"
            assert service["environment"]["CLOSEDLOOP_KAFKA"] == "kafka:9092"

    def test_prometheus_scrapes_every_worker_and_loads_the_rules(
            self, compose: dict[str, Any]) -> None:
        config = load_yaml(PROMETHEUS / "prometheus.yml")
        (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "closedloop-worker"]
        targets = {t for group in job["static_configs"] for t in group["targets"]}
        assert targets == {f"{name}:6066" for name in WORKERS}
        for name in WORKERS:
            assert compose["services"][name]["hostname"] == name
        mounts = compose["services"]["prometheus"]["volumes"]
        assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
        assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (instruction, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text("utf-8").replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.startswith("#")]


class TestDockerfile:
    def test_image(self, instructions: list[tuple[str, str]]) -> None:
        assert instructions[0] == ("FROM", "python:3.11-slim")
        runs = " ".join(arg for op, arg in instructions if op == "RUN")
        assert re.search(r"\bpip install \.(\s|$)", runs)
        user = [arg for op, arg in instructions if op == "USER"]
        assert user and not user[-1].startswith(("0", "root"))
        assert ("ENTRYPOINT", '["closedloop"]') in instructions
        assert ("CMD", '["worker", "--clock", "wall"]') in instructions
        assert ("EXPOSE", "6066") in instructions

    def test_copied_sources_exist(self, instructions: list[tuple[str, str]]) -> None:
        for op, arg in instructions:
            if op == "COPY":
                for source in arg.split()[:-1]:
                    assert (DEPLOY.parent / source).exists(), source
        ignore = (DEPLOY / "Dockerfile.dockerignore").read_text("utf-8")
        for source in ("pyproject.toml", "README.md", "schemas/", "agents/", "streams/"):
            assert f"!{source}" in ignore, source
