"""The e2gan-operator Helm chart through Helm's own engine (helm-python-sdk, offline).

Lint, render in every mode, values refused by values.schema.json, manifests valid against
the Kubernetes schemas (kubernetes-validate), CRDs identical to the generated ones, RBAC
limited to what the operator uses, and the defaults ConfigMap read by the operator's own parser.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from e2gan_api import crd as crd_gen
from tests.charts import rbac
from tests.charts.rendering import (
    CHART_DIR,
    MODES,
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    chart_crds,
    load_chart,
    operator_module,
    render,
)

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema we ship.
KUBE_VERSIONS = ("1.27", kubernetes_validate.latest_version())
# Kinds that are not Kubernetes built-ins: checked against their CRDs instead.
CUSTOM_KINDS = {"ClusterKopfPeering", "KopfPeering", "ServiceMonitor"}
WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error


# ---------------------------------------------------------------------------------------- lint


@pytest.mark.parametrize("mode", ["cluster", "namespaced", "everything"])
def test_lint_is_clean(mode: str) -> None:
    report = helm.lint(str(CHART_DIR), MODES[mode], strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert report["total_charts_linted"] == 1
    assert not problems and not report["errors"], (problems, report["errors"])


def test_chart_metadata_agrees_with_the_project() -> None:
    meta = load_chart().metadata
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert meta["apiVersion"] == "v2" and meta["type"] == "application"
    assert f'version = "{meta["appVersion"]}"' in pyproject, "appVersion must be the project's version"
    assert load_chart().schema is not None, "values.schema.json must ship with the chart"


# ---------------------------------------------------------------------------------------- render


def test_defaults_render_a_cluster_wide_operator() -> None:
    r = render()
    assert r.kinds() == sorted(
        ["ClusterKopfPeering", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
         "Deployment", "Service", "ServiceAccount"]
    )
    deploy = r.deployment
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    c = r.container
    assert c["image"] == "ghcr.io/e2gan-dev/e2gan-operator:0.1.0"
    assert c["command"] == ["kopf"]
    assert c["args"] == [
        "run", "-m", "e2gan_operator.main", "--liveness=http://0.0.0.0:8080/healthz",
        "--all-namespaces", f"--peering={RELEASE}", "--priority=0",
    ]
    assert r.one("ClusterKopfPeering")["metadata"]["name"] == RELEASE
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_pod_is_non_root_read_only_with_seccomp() -> None:
    pod = render().deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable place is an emptyDir at /tmp.
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [p for p, m in mounts.items() if not m.get("readOnly")]
    assert writable == ["/tmp"] and "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_environment_matches_the_operator_contract() -> None:
    r = render()
    env = r.env
    assert env["E2GAN_TRAINER_IMAGE"] == "ghcr.io/e2gan-dev/e2gan-trainer:0.1.0"
    assert env["E2GAN_DEFAULTS_FILE"] == "/etc/e2gan/defaults.yaml"
    assert env["E2GAN_METRICS_PORT"] == "9090"
    assert env["E2GAN_LOG_FORMAT"] == "json"
    assert env["E2GAN_S3_ENDPOINT"] == "minio.minio.svc.cluster.local:9000"
    assert env["E2GAN_S3_SECURE"] == "false" and env["E2GAN_S3_REGION"] == "us-east-1"
    assert env["E2GAN_S3_CREDENTIALS_DIR"] == "/var/run/secrets/e2gan/s3"
    assert "E2GAN_S3_CA_FILE" not in env
    # Every path in the environment lies on a mounted volume.
    mounts = [m["mountPath"] for m in r.container["volumeMounts"]]
    for key in ("E2GAN_DEFAULTS_FILE", "E2GAN_S3_CREDENTIALS_DIR"):
        assert any(env[key].startswith(m) for m in mounts), key
    cm_volume = next(v for v in r.deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "defaults")
    assert cm_volume["configMap"]["name"] == f"{RELEASE}-defaults"


def test_credentials_only_by_secret_reference() -> None:
    for mode, values in MODES.items():
        r = render(values)
        assert not r.all("Secret"), f"{mode}: the chart must never create a Secret"
        pod = r.deployment["spec"]["template"]["spec"]
        secret_volumes = [v for v in pod["volumes"] if "secret" in v]
        if values.get("catalog", {}).get("endpoint") == "":
            assert not secret_volumes and "E2GAN_S3_ENDPOINT" not in r.env
            continue
        assert [v["secret"]["secretName"] for v in secret_volumes] == ["e2gan-catalog-credentials"]
        assert {i["path"] for i in secret_volumes[0]["secret"]["items"]} == {"accesskey", "secretkey"}


def test_namespaced_mode_watches_only_the_listed_namespaces() -> None:
    r = render(MODES["namespaced"])
    args = r.container["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=team-a", "--namespace=team-b"]
    assert sorted(d["metadata"]["namespace"] for d in r.all("Role")) == ["team-a", "team-b"]
    assert sorted(d["metadata"]["namespace"] for d in r.all("RoleBinding")) == ["team-a", "team-b"]
    assert sorted(d["metadata"]["namespace"] for d in r.all("KopfPeering")) == ["team-a", "team-b"]
    assert not r.all("ClusterKopfPeering")
    # The operator's own ClusterRole keeps only what kopf must read cluster-wide.
    cluster_role = r.one("ClusterRole", RELEASE)
    assert [rule["resources"] for rule in cluster_role["rules"]] == [["customresourcedefinitions"], ["namespaces"]]
    assert all(set(rule["verbs"]) == {"list", "watch"} for rule in cluster_role["rules"])


def test_standalone_mode_has_no_peering() -> None:
    r = render(MODES["standalone"])
    assert "--standalone" in r.container["args"]
    assert not any(a.startswith(("--peering", "--priority")) for a in r.container["args"])
    assert not r.all("ClusterKopfPeering") and not r.all("KopfPeering")
    assert not [g for g in rbac.granted(r.docs, RELEASE, NAMESPACE) if g[0] == "kopf.dev"]


def test_optional_features_render() -> None:
    r = render(MODES["everything"])
    c = r.container
    assert c["image"] == "ghcr.io/e2gan-dev/e2gan-operator@sha256:" + "a" * 64
    assert c["args"][-1] == "--verbose"
    assert r.env["E2GAN_POLL_SECONDS"] == "5"
    assert r.env["E2GAN_S3_CA_FILE"] == "/etc/e2gan-ca/ca.crt" and r.env["E2GAN_S3_SECURE"] == "true"
    # ServiceMonitor → the metrics Service → the pod's metrics port.
    monitor, service = r.one("ServiceMonitor"), r.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert all(service["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    pod_labels = r.deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    # NetworkPolicy selects the operator pod and opens probes, metrics, DNS, API server, catalog.
    policy = r.one("NetworkPolicy", RELEASE)["spec"]
    assert all(pod_labels.get(k) == v for k, v in policy["podSelector"]["matchLabels"].items())
    ingress_ports = sorted(p["port"] for rule in policy["ingress"] for p in rule["ports"])
    assert ingress_ports == [8080, 9090]
    egress_ports = sorted({p["port"] for rule in policy["egress"] for p in rule["ports"]})
    assert egress_ports == [53, 443, 6443, 9000]
    # Ray pod scheduling defaults reach the operator's defaults file.
    assert r.defaults["worker"]["nodeSelector"] == {"pool": "gpu"}


def test_config_change_rolls_the_pod() -> None:
    a = render()
    b = render({"ray": {"job": {"backoffLimit": 3}}})
    key = "checksum/defaults"
    assert a.deployment["spec"]["template"]["metadata"]["annotations"][key] != \
        b.deployment["spec"]["template"]["metadata"]["annotations"][key]
    assert b.defaults["job"]["backoffLimit"] == 3


def test_notes_tell_the_next_steps() -> None:
    notes = render().notes
    for step in ("rollout status", "create secret generic e2gan-catalog-credentials", "kind: ConceptAdapter",
                 "kubectl wait conceptadapter/", "--for=condition=Ready", ".status.published.uri"):
        assert step in notes, step
    # Offline there is no ray.io API: the notes say to install KubeRay first.
    assert "KubeRay" in notes
    assert "team-a, team-b" in render(MODES["namespaced"]).notes
    # Cluster mode without listed namespaces: nothing guards the Ray dashboard, and the notes say so.
    assert "ray.networkPolicy.namespaces" in notes
    assert "ray.networkPolicy.namespaces" not in render(MODES["namespaced"]).notes
    assert 'ConfigMap "corp-ca"' in render(MODES["everything"]).notes


# ---------------------------------------------------------------------------------------- schema

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level key", {"replicas": 2}, "additional properties 'replicas' not allowed"),
    ("unknown watch mode", {"watch": {"mode": "all"}}, "at '/watch/mode'"),
    ("namespaced without namespaces", {"watch": {"mode": "namespaced"}}, "at '/watch/namespaces'"),
    ("namespace not a DNS label", {"watch": {"mode": "namespaced", "namespaces": ["Team_A"]}},
     "at '/watch/namespaces/0'"),
    ("inline access key", {"catalog": {"credentialsSecret": {"name": "s3", "accessKey": "AKIA"}}},
     "additional properties 'accessKey' not allowed"),
    ("inline secret at catalog level", {"catalog": {"secretKey": "hunter2"}},
     "additional properties 'secretKey' not allowed"),
    ("endpoint with a scheme", {"catalog": {"endpoint": "http://minio:9000"}}, "at '/catalog/endpoint'"),
    ("empty secret name", {"catalog": {"credentialsSecret": {"name": ""}}}, "at '/catalog/credentialsSecret/name'"),
    ("bad log format", {"operator": {"logFormat": "xml"}}, "at '/operator/logFormat'"),
    ("extra args that change the watch", {"operator": {"extraArgs": ["--all-namespaces"]}},
     "at '/operator/extraArgs/0'"),
    ("writable root filesystem", {"securityContext": {"readOnlyRootFilesystem": False}},
     "at '/securityContext/readOnlyRootFilesystem'"),
    ("root pod", {"podSecurityContext": {"runAsNonRoot": False}}, "at '/podSecurityContext/runAsNonRoot'"),
    ("bad quantity", {"resources": {"requests": {"cpu": "lots"}}}, "at '/resources/requests/cpu'"),
    ("port out of range", {"metrics": {"port": 70000}}, "at '/metrics/port'"),
    ("bad image digest", {"image": {"digest": "md5:abc"}}, "at '/image/digest'"),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
    ("bad Ray version", {"ray": {"version": "latest"}}, "at '/ray/version'"),
    ("negative backoff", {"ray": {"job": {"backoffLimit": -1}}}, "at '/ray/job/backoffLimit'"),
    ("bad toleration effect", {"ray": {"worker": {"tolerations": [{"key": "k", "effect": "Never"}]}}},
     "at '/ray/worker/tolerations/0/effect'"),
    ("bad scrape interval", {"metrics": {"serviceMonitor": {"interval": "soon"}}},
     "at '/metrics/serviceMonitor/interval'"),
    ("string where a bool goes", {"peering": {"enabled": "yes"}}, "at '/peering/enabled'"),
    ("S3 secret key by value in the operator's env",
     {"operator": {"extraEnv": [{"name": "E2GAN_S3_SECRET_KEY", "value": "hunter2"}]}}, "at '/operator/extraEnv/0'"),
    ("AWS key by value in the operator's env",
     {"operator": {"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]}}, "at '/operator/extraEnv/0'"),
    ("lower-case secret name by value", {"operator": {"extraEnv": [{"name": "minio_password", "value": "x"}]}},
     "at '/operator/extraEnv/0'"),
    ("token by value in the Ray pods' env", {"ray": {"env": [{"name": "HF_TOKEN", "value": "hf_x"}]}},
     "at '/ray/env/0'"),
    ("operator-owned env in the Ray pods", {"ray": {"env": [{"name": "E2GAN_S3_ENDPOINT", "value": "x"}]}},
     "at '/ray/env/0'"),
    ("hostPath volume", {"ray": {"volumes": [{"name": "h", "mountPath": "/h", "hostPath": {"path": "/"}}]}},
     "at '/ray/volumes/0'"),
    ("nfs volume (not allowed by Pod Security restricted)",
     {"ray": {"volumes": [{"name": "n", "mountPath": "/n", "nfs": {"server": "s", "path": "/"}}]}},
     "additional properties 'nfs' not allowed"),
    ("volume over /dev/shm", {"ray": {"volumes": [{"name": "v", "mountPath": "/dev/shm", "emptyDir": {}}]}},
     "at '/ray/volumes/0/mountPath'"),
    ("volume without a source", {"ray": {"volumes": [{"name": "v", "mountPath": "/v"}]}}, "at '/ray/volumes/0'"),
    ("profile name not a DNS label", {"ray": {"profiles": {"Big": {}}}}, "additional properties 'Big' not allowed"),
    ("root Ray pods", {"ray": {"securityContext": {"runAsUser": 0}}}, "at '/ray/securityContext/runAsUser'"),
    ("unknown dashboard auth", {"ray": {"dashboardAuth": "none"}}, "at '/ray/dashboardAuth'"),
    ("unknown deletion strategy", {"ray": {"job": {"deletionStrategy": "never"}}}, "at '/ray/job/deletionStrategy'"),
    ("negative pre-running deadline", {"ray": {"job": {"preRunningDeadlineSeconds": -1}}},
     "at '/ray/job/preRunningDeadlineSeconds'"),
    ("default catalog not s3", {"catalog": {"defaultUri": "file:///etc"}}, "at '/catalog/defaultUri'"),
    ("default catalog with ..", {"catalog": {"defaultUri": "s3://bucket/../x"}}, "at '/catalog/defaultUri'"),
    ("allowed catalog not s3", {"catalog": {"allowed": {"team-a": ["file:///etc"]}}}, "at '/catalog/allowed/team-a/0'"),
    ("allowed catalogs of a bad namespace", {"catalog": {"allowed": {"Team A": ["s3://bucket/x"]}}},
     "invalid propertyName 'Team A'"),
    ("kueue queue not a name", {"kueue": {"defaultQueues": {"*": "GPU queue"}}}, "at '/kueue/defaultQueues/*'"),
]


@pytest.mark.parametrize(("values", "message"), [(v, m) for _, v, m in BAD_VALUES], ids=[n for n, _, _ in BAD_VALUES])
def test_bad_values_are_refused_with_a_clear_message(values: dict[str, Any], message: str) -> None:
    chart = load_chart()
    with pytest.raises(helm.HelmValuesError) as schema_error:
        chart.validate_schema(values)
    assert message in str(schema_error.value)
    # An install (render) stops at the same place, before any template runs.
    with pytest.raises(helm.HelmValuesError) as render_error:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(render_error.value)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_passes_the_schema(mode: str) -> None:
    load_chart().validate_schema(MODES[mode])


def test_template_guards_what_the_schema_cannot() -> None:
    with pytest.raises(helm.HelmError, match="serviceAccount.name is required"):
        render({"serviceAccount": {"create": False}})


# ---------------------------------------------------------------------------------------- Kubernetes schemas


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_manifests_are_valid_kubernetes(mode: str, kube_version: str) -> None:
    r = render(MODES[mode])
    checked = 0
    for doc in r.docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, kube_version, strict=True)
        checked += 1
    assert checked >= 6  # at least ServiceAccount, ClusterRole and binding, ConfigMap, Deployment, Service


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_crds_are_valid_kubernetes(kube_version: str) -> None:
    for name, text in chart_crds().items():
        doc = yaml.safe_load(text)
        assert doc["kind"] == "CustomResourceDefinition", name
        kubernetes_validate.validate(doc, kube_version, strict=True)


def test_peering_objects_match_their_crds() -> None:
    schemas = {}
    for text in chart_crds().values():
        doc = yaml.safe_load(text)
        if doc["spec"]["group"] == "kopf.dev":
            version = doc["spec"]["versions"][0]
            schemas[doc["spec"]["names"]["kind"]] = (doc["spec"]["scope"], version["name"],
                                                     version["schema"]["openAPIV3Schema"])
    assert set(schemas) == {"ClusterKopfPeering", "KopfPeering"}
    peerings = render().all("ClusterKopfPeering") + render(MODES["namespaced"]).all("KopfPeering")
    assert len(peerings) == 3
    for obj in peerings:
        scope, version, schema = schemas[obj["kind"]]
        assert obj["apiVersion"] == f"kopf.dev/{version}"
        assert ("namespace" in obj["metadata"]) == (scope == "Namespaced")
        jsonschema.validate(obj, crd_gen.openapi_to_json_schema(schema, strict=False))


# ---------------------------------------------------------------------------------------- CRDs


def test_chart_crds_are_the_generated_crds_plus_kopf_peering() -> None:
    chart = {p.name: p.read_bytes() for p in (CHART_DIR / "crds").iterdir()}
    generated = {crd_gen.file_name(kind): crd_gen.render(kind).encode() for kind in crd_gen.KINDS}
    assert set(chart) == set(generated) | {"kopf.dev_clusterkopfpeerings.yaml", "kopf.dev_kopfpeerings.yaml"}
    for name, data in generated.items():
        assert chart[name] == data, f"charts/e2gan-operator/crds/{name} is stale: cp crds/{name} charts/e2gan-operator/crds/"
    # Helm itself sees all four as CRDs of the chart.
    assert set(chart_crds()) == set(chart)


def test_chart_crds_are_byte_identical_to_top_level_crds() -> None:
    top = REPO_ROOT / "crds"
    files = sorted(top.glob("*.yaml"))
    if not files:
        pytest.skip("crds/ holds no generated CRDs yet (python -m e2gan_api.crd writes them)")
    for path in files:
        assert (CHART_DIR / "crds" / path.name).read_bytes() == path.read_bytes(), (
            f"charts/e2gan-operator/crds/{path.name} differs from crds/{path.name}: copy it"
        )


# ---------------------------------------------------------------------------------------- RBAC

# What the operator does (operator/e2gan_operator and kopf), as recorded by test_install.py.
NAMESPACED_NEEDS = [
    *[(verb, "e2gan.dev", plural, "") for plural in ("conceptadapters", "conceptbases")
      for verb in ("get", "list", "watch", "patch")],
    ("patch", "e2gan.dev", "conceptadapters", "status"), ("patch", "e2gan.dev", "conceptbases", "status"),
    # blockOwnerDeletion on the RayJobs' ownerReferences (OwnerReferencesPermissionEnforcement).
    ("update", "e2gan.dev", "conceptadapters", "finalizers"), ("update", "e2gan.dev", "conceptbases", "finalizers"),
    *[(verb, "ray.io", "rayjobs", "") for verb in ("create", "get", "list", "watch", "patch", "delete")],
    ("create", "", "events", ""),
]
CLUSTER_NEEDS = [
    ("list", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("watch", "apiextensions.k8s.io", "customresourcedefinitions", ""),
]
# Never granted: secrets are mounted, pods are KubeRay's, nothing escalates.
FORBIDDEN = [
    ("get", "", "secrets"), ("list", "", "secrets"), ("create", "", "pods"), ("delete", "", "pods"),
    ("create", "rbac.authorization.k8s.io", "rolebindings"), ("escalate", "rbac.authorization.k8s.io", "clusterroles"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions"), ("delete", "e2gan.dev", "conceptadapters"),
    ("create", "e2gan.dev", "conceptadapters"), ("create", "", "serviceaccounts"), ("impersonate", "", "users"),
    ("update", "e2gan.dev", "conceptadapters"), ("create", "", "configmaps"), ("get", "", "configmaps"),
]


def _req(verb: str, group: str, resource: str, sub: str = "", ns: str = "") -> rbac.Request:
    return rbac.Request(verb, group, resource, sub, ns)


def test_cluster_mode_rbac_grants_what_the_operator_uses_and_no_more() -> None:
    r = render()
    allow = lambda req: rbac.allowed(r.docs, RELEASE, NAMESPACE, req)  # noqa: E731
    for verb, group, resource, sub in NAMESPACED_NEEDS + CLUSTER_NEEDS:
        assert allow(_req(verb, group, resource, sub)), f"{verb} {group}/{resource} cluster-wide"
    assert allow(_req("patch", "kopf.dev", "clusterkopfpeerings"))
    # kopf follows namespaces only when it watches a list of them.
    assert not allow(_req("list", "", "namespaces"))
    for verb, group, resource in FORBIDDEN:
        assert not allow(_req(verb, group, resource)) and not allow(_req(verb, group, resource, ns="team-a"))
    assert not any("*" in rule[k] for d in r.all("ClusterRole") for rule in d["rules"] for k in rule)


def test_namespaced_mode_rbac_stays_in_the_listed_namespaces() -> None:
    r = render(MODES["namespaced"])
    allow = lambda req: rbac.allowed(r.docs, RELEASE, NAMESPACE, req)  # noqa: E731
    for ns in ("team-a", "team-b"):
        for verb, group, resource, sub in NAMESPACED_NEEDS:
            assert allow(_req(verb, group, resource, sub, ns)), f"{verb} {group}/{resource} in {ns}"
        assert allow(_req("patch", "kopf.dev", "kopfpeerings", ns=ns))
    for verb, group, resource, sub in NAMESPACED_NEEDS:
        assert not allow(_req(verb, group, resource, sub)), f"{verb} {group}/{resource} must not be cluster-wide"
        assert not allow(_req(verb, group, resource, sub, "kube-system"))
    for verb, group, resource, sub in CLUSTER_NEEDS:
        assert allow(_req(verb, group, resource, sub))
    assert allow(_req("watch", "", "namespaces")) and not allow(_req("get", "", "namespaces"))
    assert not allow(_req("list", "kopf.dev", "clusterkopfpeerings"))


def test_aggregated_roles_extend_the_built_in_roles() -> None:
    r = render()
    editor, viewer = r.one("ClusterRole", f"{RELEASE}-editor"), r.one("ClusterRole", f"{RELEASE}-viewer")
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    kinds = {crd_gen_kind.plural for crd_gen_kind in crd_gen.KINDS}
    for verb in ("create", "update", "patch", "delete", "list", "watch"):
        for plural in kinds:
            assert any(rbac.rule_allows(rule, _req(verb, "e2gan.dev", plural)) for rule in editor["rules"])
    for plural in kinds:
        assert any(rbac.rule_allows(rule, _req("watch", "e2gan.dev", plural)) for rule in viewer["rules"])
        assert not any(rbac.rule_allows(rule, _req("create", "e2gan.dev", plural)) for rule in viewer["rules"])
        # Status is the operator's to write.
        assert not any(rbac.rule_allows(rule, _req("patch", "e2gan.dev", plural, "status")) for rule in editor["rules"])
    assert [d["metadata"]["name"] for d in render(MODES["local-catalog-only"]).all("ClusterRole")] == [RELEASE]


# ---------------------------------------------------------------------------------------- operator defaults


def test_defaults_configmap_is_read_by_the_operator() -> None:
    settings = operator_module("settings")
    for mode in ("cluster", "everything", "local-catalog-only"):
        r = render(MODES[mode])
        parsed = settings.parse_defaults(r.defaults)  # refuses unknown keys: the ConfigMap mirrors the operator
        values = load_chart().merge_values(MODES[mode])
        assert parsed.ray_version == values["ray"]["version"]
        assert parsed.gpu_resource_name == "nvidia.com/gpu"
        assert parsed.worker.resources == values["ray"]["worker"]["resources"]
        assert parsed.job.backoff_limit == values["ray"]["job"]["backoffLimit"]
        assert parsed.catalog.secure is values["catalog"]["secure"]
        assert parsed.catalog.endpoint == (values["catalog"]["endpoint"] or None)
        assert parsed.catalog.credentials_secret == values["catalog"]["credentialsSecret"]["name"]


def test_catalog_allow_lists_and_kueue_queues_reach_the_operator() -> None:
    settings = operator_module("settings")
    r = render({"catalog": {"defaultUri": "s3://adapters/shared", "allowed": {"team-a": ["s3://adapters/team-a"]}},
                "kueue": {"defaultQueues": {"team-a": "gpu-queue", "*": "shared"}}})
    parsed = settings.parse_defaults(r.defaults)
    assert parsed.catalog_policy.default == "s3://adapters/shared"
    assert parsed.catalog_policy.allowed == {"team-a": ["s3://adapters/team-a"]}
    assert parsed.catalog_policy.local_roots == []
    assert (parsed.kueue.queue("team-a"), parsed.kueue.queue("team-b")) == ("gpu-queue", "shared")


def test_defaults_configmap_mirrors_the_operator_example() -> None:
    example = REPO_ROOT / "operator" / "e2gan_operator" / "defaults.example.yaml"
    if not example.is_file():
        pytest.skip("operator/e2gan_operator/defaults.example.yaml is not written yet")

    def keys(node: Any, prefix: str = "") -> set[str]:
        """Dotted keys of the settings, not descending into user-given maps (resources, labels...)."""
        if not isinstance(node, dict) or prefix.rstrip(".").endswith(
            ("resources", "nodeSelector", "labels", "annotations", "profiles")
        ):
            return set()
        out = set()
        for k, v in node.items():
            out |= {f"{prefix}{k}"} | keys(v, f"{prefix}{k}.")
        return out

    assert keys(render().defaults) == keys(yaml.safe_load(example.read_text()))


def test_values_never_embed_credentials() -> None:
    values_text = (CHART_DIR / "values.yaml").read_text().lower()
    for word in ("password:", "accesskey:", "secretkey:", "token:"):
        assert word not in values_text


# ---------------------------------------------------------------------------------------- Ray pods


def test_secrets_by_reference_are_accepted_in_env() -> None:
    chart = load_chart()
    ref = {"secretKeyRef": {"name": "s3", "key": "secretkey"}}
    chart.validate_schema({"operator": {"extraEnv": [{"name": "E2GAN_S3_SECRET_KEY", "valueFrom": ref}]},
                           "ray": {"env": [{"name": "HF_TOKEN", "valueFrom": ref}]}})


def test_default_catalog_reaches_the_operator() -> None:
    assert render(MODES["everything"]).env["E2GAN_DEFAULT_CATALOG"] == "s3://adapters/team"
    assert "E2GAN_DEFAULT_CATALOG" not in render().env


def _rayjob_from_chart(values: dict[str, Any], spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The RayJob the operator would build from this release's defaults ConfigMap."""
    rayjob, settings = operator_module("rayjob"), operator_module("settings")
    r = render(values)
    s = settings.OperatorSettings(trainer_image=r.env["E2GAN_TRAINER_IMAGE"],
                                  cluster=settings.parse_defaults(r.defaults))
    from e2gan_api import ConceptAdapterSpec

    wire = ConceptAdapterSpec.model_validate({"concept": "c", "prompt": "p", **(spec or {})}).model_dump(
        mode="json", by_alias=True)
    owner = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter",
             "metadata": {"name": "c", "namespace": "team-a", "uid": "u"}}
    return rayjob.build_rayjob(trainer=rayjob.ADAPTER, owner=owner, spec_wire=wire, digest="d" * 64, key="k", settings=s)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions In/NotIn/Exists) against labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        value, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and value not in e["values"]) or (op == "NotIn" and value in e["values"]) \
                or (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def test_ray_network_policy_admits_only_ray_pods_the_submitter_and_kuberay() -> None:
    values = MODES["everything"]
    job = _rayjob_from_chart(values)
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["metadata"]["labels"]
    worker = cluster["workerGroupSpecs"][0]["template"]["metadata"]["labels"]
    submitter = job["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    (policy,) = [p for p in render(values).all("NetworkPolicy") if p["metadata"]["namespace"] == "team-a"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert _selects(spec["podSelector"], head) and _selects(spec["podSelector"], worker)
    assert not _selects(spec["podSelector"], submitter)
    ray_rule, dashboard_rule, metrics_rule = spec["ingress"]
    # Ray's own ports: from Ray pods only, never from the submitter or anyone else.
    (peer,) = ray_rule["from"]
    assert set(peer) == {"podSelector"} and "ports" not in ray_rule
    assert _selects(peer["podSelector"], worker) and not _selects(peer["podSelector"], submitter)
    # The dashboard: the submitter (same namespace) and the KubeRay operator's pods only.
    assert [p["port"] for p in dashboard_rule["ports"]] == [operator_module("rayjob").DASHBOARD_PORT]
    submitter_peer, kuberay_peer = dashboard_rule["from"]
    assert set(submitter_peer) == {"podSelector"} and _selects(submitter_peer["podSelector"], submitter)
    assert kuberay_peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}}
    assert kuberay_peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}}
    assert metrics_rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    # Namespaced mode covers every watched namespace; cluster mode only the listed ones.
    watched = sorted(p["metadata"]["namespace"] for p in render(MODES["namespaced"]).all("NetworkPolicy"))
    assert watched == ["team-a", "team-b"]
    assert not render().all("NetworkPolicy")
    assert not render({**MODES["namespaced"], "ray": {"networkPolicy": {"enabled": False}}}).all("NetworkPolicy")


def test_ray_pods_from_the_chart_carry_volumes_profile_ca_and_submitter() -> None:
    job = _rayjob_from_chart(MODES["everything"], {"runtime": {"profile": "sdxl"}, "resources": {"gpusPerWorker": 1}})
    worker = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    (c,) = worker["containers"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/dev/shm", "/models", "/models/sdxl", "/etc/e2gan/ca"} <= mounts
    env = {e["name"]: e for e in c["env"]}
    assert env["E2GAN_S3_CA_FILE"]["value"] == "/etc/e2gan/ca/ca.crt"
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf"
    assert worker["nodeSelector"] == {"pool": "gpu", "gpu": "a100"}
    sub = job["spec"]["submitterPodTemplate"]["spec"]
    assert sub["containers"][0]["image"] == "registry.example.com/ray:2.60.0-py311-cpu"
    assert sub["tolerations"][0]["key"] == "system"
    assert job["spec"]["preRunningDeadlineSeconds"] == 1800


def test_crds_are_never_pruned_by_gitops() -> None:
    for name, text in chart_crds().items():
        if not name.startswith("e2gan.dev_"):
            continue
        annotations = yaml.safe_load(text)["metadata"]["annotations"]
        options = set(annotations["argocd.argoproj.io/sync-options"].split(","))
        assert {"Prune=false", "Delete=false"} <= options, name
        assert annotations["kustomize.toolkit.fluxcd.io/prune"] == "disabled", name
