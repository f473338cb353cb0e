#!/usr/bin/env bash
# Checks everything under observability/ that a tool can check here, and fails on any problem:
#   1. promtool check config  for the local, docker-compose and Kubernetes Prometheus configs
#   2. promtool check rules   and promtool test rules (the alert rules' unit tests)
#   3. Grafana dashboards: valid JSON, unique uids, every panel on a provisioned data source,
#      and every metric a query names is one Backplane or Moleculer really exports
#      (observability/metrics.txt, refreshed from a running node's /metrics), and the JSON is
#      what observability/grafana/dashboards.py generates
#   4. k8s/components/servicemonitor/prometheusrule.yaml holds exactly the rules file's groups
#   5. docker-compose.yml: parses, mounts exist, dependencies and scrape targets resolve, host
#      ports unique, node variables known to lib/config.ts (no Docker needed)
# Installs the Debian package "prometheus" (promtool) when missing. Takes ~2 s.
#
#   scripts/observability-check.sh            check
#   scripts/observability-check.sh --write    first regenerate the derived files (the k8s
#                                             PrometheusRule, the dashboards' JSON), then check
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
# shellcheck source=scripts/infra/common.sh
source "$HERE/infra/common.sh"
# shellcheck source=scripts/infra/install.sh
source "$HERE/infra/install.sh"
LOG_TAG=observability
export LOG_TAG

OBS="$ROOT/observability"
WRITE=0
[[ "${1:-}" == --write ]] && WRITE=1
command -v promtool >/dev/null 2>&1 || apt_ensure prometheus
# A Python with PyYAML: the tools' virtual environment (scripts/infra.sh install-tools), else
# the system's (with python3-yaml).
PYTHON="$(dirname "$(bash "$HERE/infra.sh" which kubernetes-validate 2>/dev/null || echo /nonexistent/x)")/python"
if [[ ! -x "$PYTHON" ]]; then
  PYTHON=python3
  python3 -c 'import yaml' 2>/dev/null || apt_ensure python3-yaml
fi
t0=$SECONDS
tmp="$(mktemp -d)"
# shellcheck disable=SC2064
trap "rm -rf '$tmp'" EXIT

# The compose and Kubernetes configs name the rules by their path inside the container.
mkdir -p "$tmp/rules"
cp "$OBS"/prometheus/rules/*.yml "$tmp/rules/"
for cfg in prometheus.yml prometheus-compose.yml prometheus-k8s.yml; do
  sed "s#/etc/prometheus/rules/#$tmp/rules/#" "$OBS/prometheus/$cfg" > "$tmp/$cfg"
  # Debian builds Prometheus without Kubernetes service discovery; if this promtool lacks it,
  # check everything else (relabelling, rule files) with a static target in its place.
  out="$(promtool check config "$tmp/$cfg" 2>&1 || true)"
  if [[ "$out" == *"field kubernetes_sd_configs not found"* ]]; then
    log "note: this promtool has no Kubernetes discovery; $cfg checked with static targets instead"
    "$PYTHON" - "$tmp/$cfg" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"kubernetes_sd_configs:\n(?:\s+- role: \w+\n(?:\s{8,}.*\n)*)", "static_configs:\n      - targets: ['127.0.0.1:3030']\n", s)
open(p, "w").write(s)
PY
  fi
  out="$(promtool check config "$tmp/$cfg" 2>&1)" || { printf '%s\n' "$out" | sed 's/^/  /' >&2; die "promtool check config $cfg failed"; }
  log "ok   prometheus/$cfg"
done

out="$(promtool check rules "$OBS"/prometheus/rules/backplane.rules.yml 2>&1)" || { printf '%s\n' "$out" >&2; die "promtool check rules failed"; }
log "ok   rules: $(grep -o '[0-9]* rules found' <<<"$out")"
out="$(cd "$OBS/prometheus/rules" && promtool test rules backplane.rules.test.yml 2>&1)" || { printf '%s\n' "$out" >&2; die "promtool test rules failed"; }
log "ok   rule unit tests"

# The Prometheus Operator's copy of the rules (k8s/components/servicemonitor) must be the same.
"$PYTHON" - "$OBS/prometheus/rules/backplane.rules.yml" "$ROOT/k8s/components/servicemonitor/prometheusrule.yaml" "$WRITE" <<'PY' || die "k8s/components/servicemonitor/prometheusrule.yaml is stale: run scripts/observability-check.sh --write"
import sys
rules, target, write = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
body = "".join(l for l in open(rules).read().splitlines(True) if not l.startswith("#"))
text = """# Generated from observability/prometheus/rules/backplane.rules.yml: do not edit here.
# Regenerate: bash scripts/observability-check.sh --write  (CI fails when they differ)
# The same alert rules for the Prometheus Operator; its ruleSelector must match the labels.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: backplane
  labels:
    app.kubernetes.io/part-of: backplane
    # kube-prometheus-stack selects PrometheusRules by its release label; match yours.
    release: kube-prometheus-stack
spec:
""" + "".join("  " + l if l.strip() else l for l in body.splitlines(True))
if write:
    open(target, "w").write(text)
elif open(target).read() != text:
    sys.exit(1)
PY
log "ok   k8s PrometheusRule matches the rules file"
if ((WRITE)); then "$PYTHON" "$OBS/grafana/dashboards.py"; log "regenerated the PrometheusRule and the dashboards"; fi
"$PYTHON" "$OBS/grafana/dashboards.py" --check || die "the dashboards' JSON differs from what observability/grafana/dashboards.py writes"
"$PYTHON" - "$OBS" <<'PY' || die "Grafana dashboards have problems (above)"
import json, pathlib, re, sys
obs = pathlib.Path(sys.argv[1])
known = set((obs / "metrics.txt").read_text().split())
# Recording rules, built-in series and PromQL words are not exported metrics.
rules = set(re.findall(r"record: (\S+)", (obs / "prometheus/rules/backplane.rules.yml").read_text()))
words = {"sum", "rate", "irate", "increase", "by", "without", "on", "ignoring", "group_left", "group_right", "max", "min", "avg", "count",
         "histogram_quantile", "topk", "bottomk", "clamp_min", "clamp_max", "delta", "deriv", "time", "vector", "scalar", "and", "or", "unless",
         "up", "label_replace", "le", "abs", "round", "count_over_time", "max_over_time", "avg_over_time", "sum_over_time", "offset", "bool",
         "absent", "changes", "resets", "sort", "sort_desc", "ceil", "floor"}
errors, uids = [], {}
for f in sorted((obs / "grafana/dashboards").glob("*.json")):
    try:
        d = json.loads(f.read_text())
    except ValueError as e:
        errors.append(f"{f.name}: not JSON: {e}"); continue
    if d.get("uid") in uids: errors.append(f"{f.name}: uid {d.get('uid')} also in {uids[d['uid']]}")
    uids[d.get("uid")] = f.name
    panels = [p for p in d.get("panels", []) if p.get("type") != "row"]
    if not panels: errors.append(f"{f.name}: no panels")
    for p in panels:
        ds = (p.get("datasource") or {}).get("uid")
        if ds not in ("prometheus", "loki", "${datasource}"): errors.append(f"{f.name}: panel '{p.get('title')}' has data source {ds}")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            if ds == "loki": continue
            stripped = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', " ", expr)
            stripped = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\$\w+', " ", stripped)
            for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name in words or name in rules or name in known or base in known or re.fullmatch(r"\d.*|e|inf|Inf", name): continue
                errors.append(f"{f.name}: panel '{p.get('title')}' uses unknown metric {name}")
if errors:
    print("\n".join("  " + e for e in errors), file=sys.stderr); sys.exit(1)
print(f"\033[1;34m[observability]\033[0m ok   {len(uids)} Grafana dashboards", file=sys.stderr)
PY
# docker-compose.yml (no Docker here): it parses, every bind mount exists, every depends_on and
# every Prometheus target names a service, host ports are unique, and the nodes' variables are
# ones lib/config.ts knows.
"$PYTHON" - "$ROOT" <<'PY' || die "docker-compose.yml has problems (above)"
import pathlib, re, sys, yaml
root = pathlib.Path(sys.argv[1])
doc = yaml.safe_load((root / "docker-compose.yml").read_text())
services, errors, ports = doc["services"], [], {}
known_env = set(re.findall(r"^\s+([A-Z][A-Z0-9_]*): ", (root / "lib/config.ts").read_text(), re.M))
for name, svc in services.items():
    if "image" not in svc and "build" not in svc: errors.append(f"{name}: neither image nor build")
    for dep in (svc.get("depends_on") or {}):
        if dep not in services: errors.append(f"{name}: depends on unknown service {dep}")
    for vol in svc.get("volumes", []):
        src = vol.split(":")[0]
        if src.startswith("./") and not (root / src).exists(): errors.append(f"{name}: bind mount {src} does not exist")
        if not src.startswith(("./", "/")) and src not in (doc.get("volumes") or {}): errors.append(f"{name}: unknown volume {src}")
    for port in svc.get("ports", []):
        host = ":".join(str(port).split(":")[:-1])
        if host in ports: errors.append(f"{name}: host port {host} also used by {ports[host]}")
        ports[host] = name
    env = svc.get("environment") or {}
    if "SERVICES" in env:
        if env["SERVICES"] != name: errors.append(f"{name}: SERVICES={env['SERVICES']} but the service is named {name}")
        for var in env:
            if var not in known_env: errors.append(f"{name}: {var} is not a variable lib/config.ts reads")
prom = yaml.safe_load((root / "observability/prometheus/prometheus-compose.yml").read_text())
for job in prom["scrape_configs"]:
    for sc in job.get("static_configs", []):
        for t in sc["targets"]:
            if t.split(":")[0] not in services: errors.append(f"prometheus-compose.yml: target {t} is no compose service")
if errors:
    print("\n".join("  " + e for e in errors), file=sys.stderr); sys.exit(1)
print(f"\033[1;34m[observability]\033[0m ok   docker-compose.yml ({len(services)} services)", file=sys.stderr)
PY
log "all observability checks passed in $((SECONDS - t0))s"
