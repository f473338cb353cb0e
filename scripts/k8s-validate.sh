#!/usr/bin/env bash
# Renders every kustomize overlay (and the base) and fails on the first problem:
#   1. kubernetes-validate --strict against the oldest and newest Kubernetes we support: unknown
#      fields, wrong types, missing required fields. Custom resources without a schema
#      (ServiceMonitor) are checked by step 2 instead; any other missing schema fails.
#   2. our own rules, which schemas cannot express: hardened pods (non-root, read-only root,
#      no capabilities, seccomp, /tmp emptyDir, no service account token), probes and resources
#      on every container, SERVICES = Deployment name = app label, every Service / HPA / PDB /
#      NetworkPolicy / ServiceMonitor selects something that exists, Ingress backends exist,
#      named ports exist, Secret and ConfigMap references resolve, HPA-owned Deployments set no
#      replicas, PDBs can be met, an ExternalSecret provides every required key of the Secret it
#      makes. In-cluster dependencies (label app.kubernetes.io/component=
#      dependency, the local overlay's servers) meet Pod Security "restricted", have probes and
#      resources, and a StatefulSet's volumes and governing Service exist.
#
#   scripts/k8s-validate.sh              all of k8s/base and k8s/overlays/*
#   scripts/k8s-validate.sh eks          one overlay
#
# Tools come from `scripts/infra.sh install-tools` (installed on first use). K8S_VERSIONS picks
# the Kubernetes versions (default "1.32.0 1.37.0"). Runs in about 2 s once tools are installed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
LOG_TAG=k8s-validate
export LOG_TAG

K8S_VERSIONS="${K8S_VERSIONS:-1.32.0 1.37.0}"
# Custom resources without a bundled schema that step 2 checks instead (a regex of the warning).
CUSTOM_RESOURCES='kind ((ServiceMonitor|PrometheusRule) with api version monitoring\.coreos\.com/v1|ExternalSecret with api version external-secrets\.io/v1) '


tool() {
  local path
  if ! path="$(bash "$HERE/infra.sh" which "$1" 2>/dev/null)"; then
    log "$1 is not installed: running scripts/infra.sh install-tools (once; builds kustomize)"
    bash "$HERE/infra.sh" install-tools >&2 || die "scripts/infra.sh install-tools failed"
    path="$(bash "$HERE/infra.sh" which "$1")" || die "$1 is still missing after install-tools"
  fi
  echo "$path"
}

main() {
  local t0=$SECONDS kustomize validate python targets=() target out failed=0 versions=() v
  kustomize="$(tool kustomize)"
  validate="$(tool kubernetes-validate)"
  python="$(dirname "$validate")/python"
  for v in $K8S_VERSIONS; do versions+=(-k "$v"); done

  if (($#)); then
    for target in "$@"; do
      [[ -d "$ROOT/k8s/overlays/$target" ]] || die "no overlay k8s/overlays/$target"
      targets+=("overlays/$target")
    done
  else
    targets=(base)
    for target in "$ROOT"/k8s/overlays/*/; do targets+=("overlays/$(basename "$target")"); done
  fi

  local tmp; tmp="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  for target in "${targets[@]}"; do
    out="$tmp/${target//\//-}.yaml"
    if ! "$kustomize" build "$ROOT/k8s/$target" > "$out" 2> "$tmp/err"; then
      sed 's/^/  /' "$tmp/err" >&2
      log "FAIL k8s/$target: kustomize build"; failed=1; continue
    fi
    local report problems
    report="$("$validate" --strict --quiet "${versions[@]}" "$out" 2>&1)" || true
    # Anything but a missing schema of a custom resource we check ourselves is a failure.
    problems="$(grep -v -E "^WARN .*Couldn't find schema for ($CUSTOM_RESOURCES)" <<<"$report" | grep -v '^$' || true)"
    if [[ -n "$problems" ]]; then
      printf '%s\n' "${problems//"$out"/k8s/$target}" | sed 's/^/  /' >&2
      log "FAIL k8s/$target: schema validation (Kubernetes $K8S_VERSIONS)"; failed=1; continue
    fi
    if ! "$python" - "$target" "$out" <<<"$RULES" >&2; then
      log "FAIL k8s/$target: rules"; failed=1; continue
    fi
    log "ok   k8s/$target ($(grep -c '^kind:' "$out") resources; Kubernetes $K8S_VERSIONS)"
  done
  ((failed)) && die "Kubernetes manifests have problems (above)"
  log "all manifests valid in $((SECONDS - t0))s"
}

# The rules of step 2, run by the tools' Python (it has PyYAML). argv: TARGET FILE.
read -r -d '' RULES <<'PY' || true
import sys, yaml

target, path = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
errors = []
def err(res, msg): errors.append(f"  {target}: {res['kind']}/{res['metadata']['name']}: {msg}")
def of(kind): return [d for d in docs if d["kind"] == kind]
def matches(selector, labels):
    """A LabelSelector (matchLabels/matchExpressions) or a Service's plain map; empty selects nothing."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        plain, exprs = selector.get("matchLabels", {}), selector.get("matchExpressions", [])
    else:
        plain, exprs = selector, []
    ok = all(labels.get(k) == v for k, v in plain.items())
    for e in exprs:
        if e["operator"] == "Exists": ok = ok and e["key"] in labels
        elif e["operator"] == "DoesNotExist": ok = ok and e["key"] not in labels
        elif e["operator"] == "In": ok = ok and labels.get(e["key"]) in e.get("values", [])
        elif e["operator"] == "NotIn": ok = ok and labels.get(e["key"]) not in e.get("values", [])
    return bool(ok and (plain or exprs))

def dependency(w): return w["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "dependency"
# Backplane's nodes; the in-cluster servers of the local overlay are checked on their own below.
deployments = [d for d in of("Deployment") if not dependency(d)]
dependencies = [w for w in of("Deployment") + of("StatefulSet") if dependency(w)]
workloads = of("Deployment") + of("StatefulSet")
secrets = {s["metadata"]["name"]: s for s in of("Secret")}
# A Secret an ExternalSecret makes counts as present, with the keys it maps.
for x in of("ExternalSecret"):
    spec = x["spec"]
    if spec.get("dataFrom"): err(x, "list each key under data (dataFrom hides which keys the Secret will have)")
    keys = {d["secretKey"]: "" for d in spec.get("data", [])} | {k: "" for k in spec.get("target", {}).get("template", {}).get("data", {})}
    if not spec.get("secretStoreRef", {}).get("name"): err(x, "secretStoreRef.name missing")
    secrets[spec.get("target", {}).get("name", x["metadata"]["name"])] = {"stringData": keys}
configmaps = {c["metadata"]["name"] for c in of("ConfigMap")}
accounts = {a["metadata"]["name"]: a for a in of("ServiceAccount")}
hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of("HorizontalPodAutoscaler")}
overlay = target.startswith("overlays/")

def ports_of(dep):
    return {p["name"]: p["containerPort"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", []) if "name" in p}

for d in deployments:
    name, tpl = d["metadata"]["name"], d["spec"]["template"]
    spec, labels = tpl["spec"], tpl["metadata"].get("labels", {})
    if labels.get("app") != name: err(d, "pod label app must equal the Deployment name")
    if d["spec"]["selector"].get("matchLabels") != {"app": name}: err(d, "selector must be exactly {app: NAME}")
    if spec.get("automountServiceAccountToken") is not False: err(d, "automountServiceAccountToken must be false")
    sa = accounts.get(spec.get("serviceAccountName", "default"))
    if not sa: err(d, f"ServiceAccount {spec.get('serviceAccountName')} is not in the output")
    elif sa.get("automountServiceAccountToken") is not False: err(d, "its ServiceAccount must set automountServiceAccountToken: false")
    psc = spec.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"): err(d, "pod must set runAsNonRoot and a non-zero runAsUser")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault": err(d, "pod seccompProfile must be RuntimeDefault")
    if spec.get("terminationGracePeriodSeconds", 30) <= 10: err(d, "terminationGracePeriodSeconds must exceed the broker's 10 s shutdownTimeout")
    empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    for tsc in spec.get("topologySpreadConstraints", []):
        keys = set(tsc.get("labelSelector", {}).get("matchLabels", {})) | {e["key"] for e in tsc.get("labelSelector", {}).get("matchExpressions", [])}
        if tsc.get("matchLabelKeys") and not tsc.get("labelSelector"): err(d, "matchLabelKeys needs a labelSelector")
        if keys & set(tsc.get("matchLabelKeys", [])): err(d, f"keys {sorted(keys & set(tsc['matchLabelKeys']))} in both labelSelector and matchLabelKeys (the API server rejects that)")
        if not matches(tsc.get("labelSelector", {}), labels): err(d, "a topology spread labelSelector does not select its own pods")
    if name in hpas and "replicas" in d["spec"]: err(d, "has an HPA, so it must not set spec.replicas (every apply would reset the count)")
    for c in spec["containers"]:
        csc = c.get("securityContext", {})
        if csc.get("allowPrivilegeEscalation") is not False: err(d, f"container {c['name']}: allowPrivilegeEscalation must be false")
        if csc.get("readOnlyRootFilesystem") is not True: err(d, f"container {c['name']}: readOnlyRootFilesystem must be true")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []): err(d, f"container {c['name']}: capabilities must drop ALL")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}): err(d, f"container {c['name']}: resources.{kind}.{r} missing")
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c: err(d, f"container {c['name']}: {probe} missing")
        names = {p.get("name") for p in c.get("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            p = c.get(probe, {})
            port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
            if isinstance(port, str) and port not in names: err(d, f"container {c['name']}: {probe} uses unknown port name {port}")
        if not any(m["mountPath"] == "/tmp" and m["name"] in empty_dirs for m in c.get("volumeMounts", [])):
            err(d, f"container {c['name']}: /tmp must be an emptyDir (the root filesystem is read-only)")
        env = {e["name"]: e for e in c.get("env", [])}
        if env.get("SERVICES", {}).get("value") != name: err(d, f"container {c['name']}: env SERVICES must be {name}")
        for var, field in (("NODE_ID", "metadata.name"), ("GRPC_ADVERTISE_HOST", "status.podIP")):
            if env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != field: err(d, f"container {c['name']}: {var} must come from {field}")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if not ref: continue
            if ref["name"] in secrets:
                data = {**secrets[ref["name"]].get("data", {}), **secrets[ref["name"]].get("stringData", {})}
                if ref["key"] not in data and not ref.get("optional"): err(d, f"Secret {ref['name']} has no key {ref['key']}")
            elif not ref["name"].startswith("backplane-secrets"): err(d, f"unknown Secret {ref['name']} (only backplane-secrets may come from outside)")
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef and ef["configMapRef"]["name"] not in configmaps: err(d, f"ConfigMap {ef['configMapRef']['name']} is not in the output")
        if overlay and (":" not in c["image"].rsplit("/", 1)[-1] or c["image"].startswith("backplane")):
            err(d, f"container {c['name']}: image {c['image']} was not set by the overlay (images:)")
        if target == "overlays/local" and c.get("imagePullPolicy") != "Never": err(d, "local: imagePullPolicy must be Never")

services_by_name = {s["metadata"]["name"]: s for s in of("Service")}
for w in dependencies:
    name, spec = w["metadata"]["name"], w["spec"]["template"]["spec"]
    psc = spec.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"): err(w, "pod must set runAsNonRoot and a non-zero runAsUser (Pod Security restricted)")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault": err(w, "pod seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False: err(w, "automountServiceAccountToken must be false")
    claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"] for v in spec.get("volumes", [])} | claims
    for t in w["spec"].get("volumeClaimTemplates", []):
        if not t["spec"].get("resources", {}).get("requests", {}).get("storage"): err(w, f"volumeClaimTemplate {t['metadata']['name']} requests no storage")
    for c in spec["containers"]:
        csc = c.get("securityContext", {})
        if csc.get("allowPrivilegeEscalation") is not False: err(w, f"container {c['name']}: allowPrivilegeEscalation must be false")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []): err(w, f"container {c['name']}: capabilities must drop ALL")
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c: err(w, f"container {c['name']}: {probe} missing")
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in c.get("resources", {}).get(kind, {}): err(w, f"container {c['name']}: resources.{kind}.{r} missing")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes: err(w, f"container {c['name']}: mounts unknown volume {m['name']}")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and (ref["name"] not in secrets or ref["key"] not in {**secrets[ref["name"]].get("data", {}), **secrets[ref["name"]].get("stringData", {})}):
                err(w, f"Secret {ref['name']} with key {ref['key']} is not in the output")
    if w["kind"] == "StatefulSet":
        gov = services_by_name.get(w["spec"].get("serviceName"))
        if not gov or not matches(gov["spec"].get("selector", {}), w["spec"]["template"]["metadata"].get("labels", {})): err(w, "serviceName must name a Service that selects its pods")

def selected(selector):
    return [d for d in workloads if matches(selector, d["spec"]["template"]["metadata"].get("labels", {}))]

for s in of("Service"):
    deps = selected(s["spec"].get("selector", {}))
    if not deps: err(s, "selects no Deployment's pods"); continue
    if s["metadata"]["name"] != s["spec"]["selector"].get("app"): err(s, "name must equal its app selector")
    for p in s["spec"].get("ports", []):
        tp = p.get("targetPort", p["port"])
        if isinstance(tp, str) and any(tp not in ports_of(d) for d in deps): err(s, f"targetPort {tp} is not a named port of its pods")

for h in of("HorizontalPodAutoscaler"):
    if h["spec"]["scaleTargetRef"]["name"] not in {d["metadata"]["name"] for d in deployments}: err(h, "scales a Deployment that does not exist")

for p in of("PodDisruptionBudget"):
    deps = selected(p["spec"]["selector"])
    if not deps: err(p, "selects no pods"); continue
    for d in deps:
        h = hpas.get(d["metadata"]["name"])
        least = h["spec"].get("minReplicas", 1) if h else d["spec"].get("replicas", 1)
        if isinstance(p["spec"].get("minAvailable"), int) and p["spec"]["minAvailable"] >= least:
            err(p, f"minAvailable {p['spec']['minAvailable']} with as few as {least} pod(s) of {d['metadata']['name']} blocks every drain")

for n in of("NetworkPolicy"):
    sel = n["spec"]["podSelector"]
    if not sel: continue
    deps = selected(sel)
    if not deps: err(n, "selects no pods"); continue
    for rule in n["spec"].get("ingress", []):
        for frm in rule.get("from", []):
            if "podSelector" in frm and "namespaceSelector" not in frm and not selected(frm["podSelector"]): err(n, "a from.podSelector selects no pods")
        for port in rule.get("ports", []):
            if isinstance(port.get("port"), int) and not any(port["port"] in ports_of(d).values() for d in deps):
                err(n, f"port {port['port']} is not a container port of the selected pods")

services = {s["metadata"]["name"]: s for s in of("Service")}
for i in of("Ingress"):
    for rule in i["spec"].get("rules", []):
        for p in rule.get("http", {}).get("paths", []):
            svc = p["backend"].get("service", {})
            s = services.get(svc.get("name"))
            if not s: err(i, f"backend Service {svc.get('name')} is not in the output"); continue
            port = svc.get("port", {})
            if "name" in port and port["name"] not in {q.get("name") for q in s["spec"]["ports"]}: err(i, f"Service {s['metadata']['name']} has no port named {port['name']}")
            if "number" in port and port["number"] not in {q["port"] for q in s["spec"]["ports"]}: err(i, f"Service {s['metadata']['name']} has no port {port['number']}")

for m in of("ServiceMonitor"):
    spec = m.get("spec", {})
    svcs = [s for s in of("Service") if matches(spec.get("selector", {}), s["metadata"].get("labels", {}))]
    if not svcs: err(m, "selects no Service")
    for ep in spec.get("endpoints", []):
        if not ep.get("port"): err(m, "every endpoint needs a named port")
        for s in svcs:
            if ep.get("port") not in {p.get("name") for p in s["spec"]["ports"]}: err(m, f"Service {s['metadata']['name']} has no port named {ep.get('port')}")

print("\n".join(errors), file=sys.stderr) if errors else None
sys.exit(1 if errors else 0)
PY

main "$@"
