"""deploy/k8s: the worker Deployment, Strimzi topics and users, and the monitoring resources.

Offline checks (the network is closed here, so kubeconform cannot fetch its schemas):

- built-in kinds (ServiceAccount, Deployment, PodDisruptionBudget) are validated with
  ``kubernetes-validate`` in strict mode (unknown fields refused) against the Kubernetes
  OpenAPI schemas that package ships, for the oldest and newest versions we support;
- custom resources (Strimzi KafkaTopic and KafkaUser, Prometheus Operator PodMonitor and
  PrometheusRule) against the small schemas below, written here from those projects' API
  references: only the fields we use, with their enums, and nothing else allowed. They are
  not the CRDs themselves;
- and the cross-checks no schema knows: topics = ``topic_specs`` = the AsyncAPI bindings,
  ACLs = what the worker's Faust app really reads, probes on the worker's real endpoints,
  credentials from a Secret file, rules = deploy/prometheus/rules.yml.
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from deploy_support import K8S, PROMETHEUS, REPO, load_yaml, load_yaml_all, need_module

from closedloop.streams.engine.topology import TOPOLOGY
from closedloop.streams.kafka.topics import topic_specs

KUBERNETES_VERSIONS = ("1.29", "1.37")
BUILT_IN = {"ServiceAccount", "Deployment", "PodDisruptionBudget"}
STRIMZI_API = {"kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"}
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def _resource(api: Any, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": api, "kind": {"const": kind}, "metadata": _METADATA,
                       "spec": spec},
        "additionalProperties": False,
    }


_STRIMZI = {"enum": sorted(STRIMZI_API)}
CUSTOM_SCHEMAS: dict[str, dict[str, Any]] = {
    "KafkaTopic": _resource(_STRIMZI, "KafkaTopic", {
        "type": "object",
        "required": ["topicName", "partitions", "replicas", "config"],
        "properties": {
            "topicName": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        },
        "additionalProperties": False,
    }),
    "KafkaUser": _resource(_STRIMZI, "KafkaUser", {
        "type": "object",
        "required": ["authentication", "authorization"],
        "properties": {
            "authentication": {
                "type": "object", "required": ["type"], "additionalProperties": False,
                "properties": {"type": {"enum": ["tls", "tls-external", "scram-sha-512"]}},
            },
            "authorization": {
                "type": "object", "required": ["type", "acls"], "additionalProperties": False,
                "properties": {
                    "type": {"const": "simple"},
                    "acls": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["resource", "operations"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"enum": ["allow", "deny"]},
                            "host": {"type": "string"},
                            "resource": {
                                "type": "object", "required": ["type", "name"],
                                "additionalProperties": False,
                                "properties": {
                                    "type": {"enum": ["topic", "group", "cluster",
                                                      "transactionalId"]},
                                    "name": {"type": "string", "minLength": 1},
                                    "patternType": {"enum": ["literal", "prefix"]},
                                },
                            },
                            "operations": {"type": "array", "minItems": 1, "items": {"enum": [
                                "Read", "Write", "Create", "Delete", "Alter", "Describe",
                                "ClusterAction", "AlterConfigs", "DescribeConfigs",
                                "IdempotentWrite", "All"]}},
                        },
                    }},
                },
            },
        },
        "additionalProperties": False,
    }),
    "PodMonitor": _resource({"const": "monitoring.coreos.com/v1"}, "PodMonitor", {
        "type": "object",
        "required": ["selector", "podMetricsEndpoints"],
        "properties": {
            "jobLabel": {"type": "string"},
            "selector": {"type": "object", "required": ["matchLabels"],
                         "properties": {"matchLabels": {"type": "object"}}},
            "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["port"], "additionalProperties": False,
                "properties": {
                    "port": {"type": "string"}, "path": {"type": "string"},
                    "interval": {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"},
                    "relabelings": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"sourceLabels": {"type": "array"},
                                       "targetLabel": {"type": "string"},
                                       "regex": {"type": "string"},
                                       "replacement": {"type": "string"},
                                       "action": {"type": "string"}}}},
                },
            }},
        },
        "additionalProperties": False,
    }),
    "PrometheusRule": _resource({"const": "monitoring.coreos.com/v1"}, "PrometheusRule", {
        "type": "object",
        "required": ["groups"],
        "properties": {"groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "rules"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "interval": {"type": "string"},
                           "rules": {"type": "array", "items": {
                               "type": "object", "required": ["expr"],
                               "additionalProperties": False,
                               "properties": {
                                   "alert": {"type": "string"}, "record": {"type": "string"},
                                   "expr": {"type": "string"}, "for": {"type": "string"},
                                   "labels": {"type": "object"},
                                   "annotations": {"type": "object"}}}}},
        }}},
        "additionalProperties": False,
    }),
}


@functools.cache
def _parsed() -> tuple[tuple[Path, dict[str, Any]], ...]:
    return tuple((path, doc) for path in MANIFESTS for doc in load_yaml_all(path))


def documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every (file, manifest), as fresh copies a test may change."""
    return copy.deepcopy(list(_parsed()))


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def strict_errors(doc: dict[str, Any], version: str) -> str | None:
    kubernetes_validate = need_module("kubernetes_validate")
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'/'.join(map(str, exc.path))}: {exc.message}"
    return None


def custom_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(CUSTOM_SCHEMAS[doc["kind"]])
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


class TestSchemas:
    def test_every_manifest_is_in_the_kustomization(self) -> None:
        kustomization = load_yaml(K8S / "kustomization.yaml")
        assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]

    def test_every_kind_has_a_check(self) -> None:
        kinds = {doc["kind"] for _, doc in documents()}
        assert kinds == BUILT_IN | set(CUSTOM_SCHEMAS)

    @pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
    def test_built_in_kinds_are_valid_strictly(self, version: str) -> None:
        for path, doc in documents():
            if doc["kind"] in BUILT_IN:
                assert strict_errors(doc, version) is None, f"{path.name} {doc['kind']}"

    def test_custom_resources_match_their_schemas(self) -> None:
        for path, doc in documents():
            if doc["kind"] in CUSTOM_SCHEMAS:
                assert custom_errors(doc) == [], f"{path.name} {doc['metadata']['name']}"

    def test_strict_validation_refuses_a_misspelt_field(self) -> None:
        (deployment,) = copy.deepcopy(of_kind("Deployment"))
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["livenessprobe"] = container.pop("livenessProbe")
        assert strict_errors(deployment, KUBERNETES_VERSIONS[-1])

    def test_custom_schemas_refuse_a_bad_acl(self) -> None:
        user = copy.deepcopy(of_kind("KafkaUser")[0])
        user["spec"]["authorization"]["acls"][0]["operations"] = ["Everything"]
        assert custom_errors(user)

    def test_generated_files_are_up_to_date(self) -> None:
        result = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == 0, result.stderr


class TestTopics:
    def test_a_kafka_topic_per_topic_spec(self) -> None:
        topics = {doc["spec"]["topicName"]: doc["spec"] for doc in of_kind("KafkaTopic")}
        specs = topic_specs("closedloop", 12, 3)
        assert set(topics) == {spec.address for spec in specs}
        for spec in specs:
            topic = topics[spec.address]
            assert (topic["partitions"], topic["replicas"]) == (12, 3)
            assert topic["config"] == {**spec.config, "min.insync.replicas": "2"}

    def test_topics_agree_with_the_asyncapi_document(self) -> None:
        channels = load_yaml(REPO / "schemas" / "asyncapi.yaml")["channels"]
        topics = {doc["spec"]["topicName"]: doc["spec"] for doc in of_kind("KafkaTopic")}
        for channel in channels.values():
            binding = channel["bindings"]["kafka"]
            topic = topics[channel["address"]]
            assert (topic["partitions"], topic["replicas"]) == \
                (binding["partitions"], binding["replicas"])
            for key, value in binding["topicConfiguration"].items():
                if key != "cleanup.policy":
                    assert topic["config"][key] == str(value), (channel["address"], key)
            assert topic["config"]["cleanup.policy"] == \
                ",".join(binding["topicConfiguration"]["cleanup.policy"])

    def test_topics_belong_to_the_cluster_the_users_use(self) -> None:
        clusters = {doc["metadata"]["labels"]["strimzi.io/cluster"]
                    for kind in ("KafkaTopic", "KafkaUser") for doc in of_kind(kind)}
        assert clusters == {"closedloop-kafka"}


def acls_of(user: str) -> list[dict[str, Any]]:
    (doc,) = [d for d in of_kind("KafkaUser") if d["metadata"]["name"] == user]
    acls: list[dict[str, Any]] = doc["spec"]["authorization"]["acls"]
    return acls


def topics_with(acls: list[dict[str, Any]], operation: str) -> set[str]:
    return {acl["resource"]["name"] for acl in acls
            if acl["resource"]["type"] == "topic" and acl["resource"]["patternType"] == "literal"
            and operation in acl["operations"]}


class TestUsers:
    def test_least_privilege_everywhere(self) -> None:
        for doc in of_kind("KafkaUser"):
            assert doc["spec"]["authentication"]["type"] == "scram-sha-512"
            for acl in doc["spec"]["authorization"]["acls"]:
                assert acl["type"] == "allow"
                assert "All" not in acl["operations"]
                # no cluster rights; the worker writes in transactions of its own ids
                assert acl["resource"]["type"] in {"topic", "group", "transactionalId"}
                assert acl["resource"]["name"] not in {"*", ""}
                assert acl["resource"]["name"].startswith("closedloop")

    def test_the_worker_reads_exactly_what_its_agents_consume(
            self, worker_probe: dict[str, Any]) -> None:
        acls = acls_of("closedloop-worker")
        assert topics_with(acls, "Read") == set(worker_probe["reads"])
        read = {name for name in TOPOLOGY.inputs if name in TOPOLOGY.readers}
        assert {"area", "round", "sampling", "travel"} <= read
        assert {f"closedloop.{name}.v1" for name in read} <= topics_with(acls, "Read")

    def test_the_worker_writes_the_outputs_and_its_internal_topics(self) -> None:
        acls = acls_of("closedloop-worker")
        writes = topics_with(acls, "Write")
        assert {f"closedloop.{n}.v1" for n in ("alerts", "person-status", "daily-report",
                                               "deadletter")} <= writes
        assert not writes & {f"closedloop.{name}.v1" for name in TOPOLOGY.inputs}
        every = {spec.address for spec in topic_specs("closedloop", 1, 1)}
        assert topics_with(acls, "Describe") == every

    def test_the_worker_owns_its_faust_topics_and_group(
            self, worker_probe: dict[str, Any]) -> None:
        acls = acls_of("closedloop-worker")
        (prefix,) = [a for a in acls if a["resource"]["patternType"] == "prefix"
                     and a["resource"]["type"] == "topic"]
        assert prefix["resource"] == {"type": "topic", "name": f"{worker_probe['app_id']}-",
                                      "patternType": "prefix"}
        assert all(t.startswith(prefix["resource"]["name"]) for t in worker_probe["changelogs"])
        groups = [a["resource"] for a in acls if a["resource"]["type"] == "group"]
        assert groups == [{"type": "group", "name": worker_probe["app_id"],
                           "patternType": "literal"}]
        (ids,) = [a for a in acls if a["resource"]["type"] == "transactionalId"]
        assert worker_probe["transactional_id"].startswith(ids["resource"]["name"])
        assert ids["resource"]["patternType"] == "prefix" and "Write" in ids["operations"]
        # The worker creates nothing the Topic Operator owns.
        assert not [a for a in acls if "Create" in a["operations"] and a is not prefix]

    def test_producers_write_only_their_own_topic(self) -> None:
        for name in TOPOLOGY.inputs:
            user = f"closedloop-producer-{name}"
            if name == "action":
                user = "closedloop-operator-console"
            acls = acls_of(user)
            assert f"closedloop.{name}.v1" in topics_with(acls, "Write")
            assert len(topics_with(acls, "Write")) == 1, user

    def test_readers_use_their_own_consumer_groups(self) -> None:
        for doc in of_kind("KafkaUser"):
            name = doc["metadata"]["name"]
            acls = doc["spec"]["authorization"]["acls"]
            if name == "closedloop-worker" or not topics_with(acls, "Read"):
                continue
            groups = [a["resource"] for a in acls if a["resource"]["type"] == "group"]
            assert groups == [{"type": "group", "name": name, "patternType": "prefix"}], name


def container() -> dict[str, Any]:
    (deployment,) = of_kind("Deployment")
    (worker,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(worker)


def env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in container()["env"]}


class TestWorkerDeployment:
    def test_probes_use_the_workers_endpoints(self) -> None:
        worker = container()
        port = worker["ports"][0]
        assert (port["name"], port["containerPort"]) == ("http-metrics", 6066)
        assert env()["CLOSEDLOOP_WEB_PORT"] == "6066"
        assert env()["CLOSEDLOOP_WEB_BIND"] == "0.0.0.0"
        assert worker["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http-metrics"}
        assert worker["startupProbe"]["httpGet"] == {"path": "/health", "port": "http-metrics"}
        assert worker["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http-metrics"}

    def test_sigterm_gets_time_to_finish(self) -> None:
        (deployment,) = of_kind("Deployment")
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
        assert container()["args"][:3] == ["worker", "--clock", "wall"]

    def test_each_pod_has_an_empty_dir_for_its_data(self) -> None:
        (deployment,) = of_kind("Deployment")
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
        data = mounts[env()["CLOSEDLOOP_DATA_DIR"]]
        assert "emptyDir" in volumes[data]
        assert container()["securityContext"]["readOnlyRootFilesystem"] is True
        assert "emptyDir" in volumes[mounts["/tmp"]]

    def test_sasl_password_is_a_file_from_the_users_secret(self) -> None:
        (deployment,) = of_kind("Deployment")
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
        settings = env()
        assert settings["CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        password = Path(settings["CLOSEDLOOP_KAFKA_PASSWORD_FILE"])
        mount = mounts[str(password.parent)]
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == settings["CLOSEDLOOP_KAFKA_USERNAME"]
        assert secret["items"] == [{"key": "password", "path": password.name}]
        assert {d["metadata"]["name"] for d in of_kind("KafkaUser")} >= {secret["secretName"]}
        ca = Path(settings["CLOSEDLOOP_KAFKA_CA_FILE"])
        assert str(ca.parent) in mounts
        # Nothing secret in the environment itself.
        assert not [name for name in settings if re.search("PASSWORD(?!_FILE)|SECRET", name)]

    def test_every_variable_is_one_the_worker_reads(self) -> None:
        source = "".join((REPO / "streams" / name).read_text("utf-8")
                         for name in ("kafka/settings.py", "kafka/app.py", "cli/worker.py"))
        known = set(re.findall(r"CLOSEDLOOP_[A-Z_]+", source))
        assert set(env()) <= known, set(env()) - known

    def test_pod_monitor_scrapes_the_pods_as_the_rules_expect(self) -> None:
        (deployment,) = of_kind("Deployment")
        (monitor,) = of_kind("PodMonitor")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert pod_labels[monitor["spec"]["jobLabel"]] == "closedloop-worker"
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert (endpoint["port"], endpoint["path"]) == ("http-metrics", "/metrics")
        (budget,) = of_kind("PodDisruptionBudget")
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_prometheus_rule_holds_the_rules_file() -> None:
    (rule,) = of_kind("PrometheusRule")
    assert rule["spec"]["groups"] == load_yaml(PROMETHEUS / "rules.yml")["groups"]


def test_every_kafka_user_is_documented() -> None:
    readme = (K8S.parent / "README.md").read_text("utf-8")
    for doc in of_kind("KafkaUser"):
        assert f"| {doc['metadata']['name']} |" in readme, doc["metadata"]["name"]
