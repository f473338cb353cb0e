# Installing what the local stack needs: Debian packages, Go-built servers, optional tools.
# Sourced by scripts/infra.sh. Everything built lands in $CACHE_DIR (outside the clone), keyed by
# version, so a fresh clone on the same machine reuses it and a new machine rebuilds it.
# shellcheck shell=bash

# ---------------------------------------------------------------- Debian packages

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs the given Debian packages that are missing; runs apt-get update only when needed.
apt_ensure() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
  # Refresh the package lists first unless they were refreshed in the last 6 hours.
  if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 -print -quit 2>/dev/null)" ]]; then
    log "apt-get update"
    as_root "${apt[@]}" update -qq || die "apt-get update failed"
  fi
  log "installing Debian packages: ${missing[*]}"
  if ! as_root "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"; then
    log "retrying after apt-get update"
    as_root "${apt[@]}" update -qq || die "apt-get update failed"
    as_root "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" \
      || die "apt-get install ${missing[*]} failed"
  fi
}

# Debian packages per service (curl is used by the readiness checks).
service_packages() {
  case "$1" in
    postgres) echo postgresql ;;
    redis) echo redis-server ;;
    rabbitmq) echo rabbitmq-server ;;
    *) ;;
  esac
}

# ---------------------------------------------------------------- Go

go_version_ok() { # go >= 1.21 can fetch whatever newer toolchain a module asks for
  local v
  v="$("$1" env GOVERSION 2>/dev/null)" || return 1
  [[ "$v" =~ ^go1\.([0-9]+) ]] && (( BASH_REMATCH[1] >= 21 ))
}

# Puts a usable `go` on PATH: the installed one if recent enough, else a toolchain from the Go
# module proxy (golang.org/toolchain is an ordinary module) cached under $CACHE_DIR/go.
ensure_go() {
  local g
  for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go "$CACHE_DIR/go/$GO_BOOTSTRAP_VERSION/bin/go"; do
    if [[ -n "$g" && -x "$g" ]] && go_version_ok "$g"; then
      PATH="$(dirname "$g"):$PATH"; export PATH; return 0
    fi
  done
  apt_ensure curl ca-certificates unzip
  local arch; case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) die "unsupported CPU $(uname -m)" ;; esac
  local proxy="${GOPROXY:-https://proxy.golang.org}"; proxy="${proxy%%,*}"; proxy="${proxy%%|*}"
  [[ "$proxy" == http* ]] || proxy=https://proxy.golang.org
  local mod="v0.0.1-go$GO_BOOTSTRAP_VERSION.linux-$arch" tmp
  log "installing Go $GO_BOOTSTRAP_VERSION from the Go module proxy into $CACHE_DIR/go"
  tmp="$(mktemp -d)"
  curl -fsSL --retry 3 -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/$mod.zip" || die "could not download the Go toolchain $mod"
  unzip -q "$tmp/go.zip" -d "$tmp/x" || die "could not unpack the Go toolchain"
  chmod -R u+w "$tmp/x"
  chmod +x "$tmp/x/golang.org/toolchain@$mod"/bin/* "$tmp/x/golang.org/toolchain@$mod"/pkg/tool/*/*
  mkdir -p "$CACHE_DIR/go"; rm -rf "$CACHE_DIR/go/$GO_BOOTSTRAP_VERSION"
  mv "$tmp/x/golang.org/toolchain@$mod" "$CACHE_DIR/go/$GO_BOOTSTRAP_VERSION"
  rm -rf "$tmp"
  PATH="$CACHE_DIR/go/$GO_BOOTSTRAP_VERSION/bin:$PATH"; export PATH
  go_version_ok go || die "the bootstrapped Go does not run"
}

# ---------------------------------------------------------------- Go-built tools

tool_bin() { # NAME -> path of its binary for the pinned version
  case "$1" in
    ferretdb) echo "$TOOLS_DIR/ferretdb/$FERRETDB_VERSION/ferretdb" ;;
    mailpit) echo "$TOOLS_DIR/mailpit/$MAILPIT_VERSION/mailpit" ;;
    stripe-mock) echo "$TOOLS_DIR/stripe-mock/$STRIPE_MOCK_VERSION/stripe-mock" ;;
    actionlint) echo "$TOOLS_DIR/actionlint/$ACTIONLINT_VERSION/actionlint" ;;
    kustomize) echo "$TOOLS_DIR/kustomize/$KUSTOMIZE_VERSION/kustomize" ;;
    schemathesis|st) echo "$CACHE_DIR/venv/bin/schemathesis" ;;
    kubernetes-validate) echo "$CACHE_DIR/venv/bin/kubernetes-validate" ;;
    *) return 1 ;;
  esac
}

tool_module() {
  case "$1" in
    ferretdb) echo "github.com/FerretDB/FerretDB/cmd/ferretdb $FERRETDB_VERSION" ;;
    mailpit) echo "github.com/axllent/mailpit $MAILPIT_VERSION" ;;
    stripe-mock) echo "github.com/stripe/stripe-mock $STRIPE_MOCK_VERSION" ;;
    actionlint) echo "github.com/rhysd/actionlint/cmd/actionlint $ACTIONLINT_VERSION" ;;
    kustomize) echo "sigs.k8s.io/kustomize/kustomize/v5 $KUSTOMIZE_VERSION" ;;
    *) return 1 ;;
  esac
}

# If someone else is already building MODULE (another clone, a background job), waits for it
# (bounded) instead of starting a second build of the same thing on 2 cores.
wait_foreign_build() {
  local module="$1" bin="$2" pids deadline=$((SECONDS + 1800)) said=""
  while pids="$(pgrep -f -- "go (install|build) .*${module%%/cmd/*}" 2>/dev/null | tr '\n' ' ')" && [[ -n "${pids// }" ]]; do
    [[ -x "$bin" ]] && return 0
    [[ -n "$said" ]] || { log "a build of $module is already running (pid ${pids% }); waiting for it"; said=1; }
    (( SECONDS < deadline )) || { warn "that build is still running after 30 minutes; building anyway"; return 0; }
    sleep 3
  done
}

# Builds one Go tool into $TOOLS_DIR/NAME/VERSION unless it is already there.
ensure_go_tool() {
  local name="$1" bin module version
  bin="$(tool_bin "$name")"
  [[ -x "$bin" ]] && return 0
  read -r module version <<<"$(tool_module "$name")"
  wait_foreign_build "$module" "$bin"
  [[ -x "$bin" ]] && return 0

  # One builder at a time per tool and version, across clones and concurrent runs.
  mkdir -p "$CACHE_DIR/locks" "$CACHE_DIR/logs"
  local lockfile="$CACHE_DIR/locks/$name-$version.lock" buildlog="$CACHE_DIR/logs/build-$name-$version.log"
  exec 8>"$lockfile"
  flock -n 8 || { log "waiting for another build of $name $version"; flock -w 1800 8 || die "timed out waiting for $lockfile"; }
  if [[ -x "$bin" ]]; then exec 8>&-; return 0; fi

  ensure_go
  # Let an older Go fetch the toolchain a module asks for (some installs pin GOTOOLCHAIN=local).
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
  log "building $name $version (takes a few minutes)… log: $buildlog"
  local tmp start=$SECONDS ok=1
  tmp="$(mktemp -d)"
  if [[ "$name" == ferretdb ]]; then
    build_ferretdb "$tmp" >"$buildlog" 2>&1 || ok=0
  else
    (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false go install "$module@$version") >"$buildlog" 2>&1 || ok=0
  fi
  if ((ok)) && [[ -x "$tmp/bin/$(basename "$bin")" ]]; then
    mkdir -p "$(dirname "$bin")"
    mv -f "$tmp/bin/$(basename "$bin")" "$bin.tmp$$" && mv -f "$bin.tmp$$" "$bin"
    rm -rf "$tmp"; exec 8>&-
    log "built $name $version in $((SECONDS - start))s -> $bin"
  else
    rm -rf "$tmp"; exec 8>&-
    log_tail "$buildlog" 25
    die "building $name $version failed (full log: $buildlog)"
  fi
}

# FerretDB's build/version package panics at start-up unless build/version/version.txt (written
# by its release tooling, absent from the module zip) holds the version, so a plain
# `go install` yields a binary that cannot start. Build it from a copy of the module with the
# file written.
build_ferretdb() {
  local tmp="$1" dir
  dir="$(cd "$tmp" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "$dir" && -d "$dir" ]] || { echo "go mod download did not report a directory" >&2; return 1; }
  cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src"
  echo "$FERRETDB_VERSION" > "$tmp/src/build/version/version.txt"
  (cd "$tmp/src" && GOFLAGS=-buildvcs=false go build -o "$tmp/bin/ferretdb" ./cmd/ferretdb)
}

# ---------------------------------------------------------------- Python tools

venv_python() {
  if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3
  elif command -v python3 >/dev/null 2>&1; then command -v python3
  else apt_ensure python3 python3-venv; echo /usr/bin/python3
  fi
}

ensure_venv() {
  local venv="$CACHE_DIR/venv" py want stamp
  py="$(venv_python)"
  want="schemathesis==$SCHEMATHESIS_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION $("$py" -V 2>&1)"
  stamp="$venv/.backplane-stamp"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/schemathesis" && -x "$venv/bin/kubernetes-validate" ]]; then
    return 0
  fi
  if [[ "$py" == /usr/bin/python3 ]] && ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    apt_ensure python3-venv
  fi
  log "creating the Python tools environment in $venv (schemathesis $SCHEMATHESIS_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
  rm -rf "$venv"
  "$py" -m venv "$venv" || die "python3 -m venv failed"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q \
    "schemathesis==$SCHEMATHESIS_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    || die "pip install into $venv failed"
  echo "$want" > "$stamp"
}

# ---------------------------------------------------------------- entry points

# Installs what the named services need (all of them by default).
install_for() {
  local names=("$@") pkgs=() n p need_curl=0
  for n in "${names[@]}"; do
    p="$(service_packages "$n")"; [[ -n "$p" ]] && pkgs+=("$p")
    case "$n" in rabbitmq|mailpit|stripe-mock) need_curl=1 ;; esac
  done
  ((need_curl)) && pkgs+=(curl ca-certificates)
  ((${#pkgs[@]})) && apt_ensure "${pkgs[@]}"
  for n in "${names[@]}"; do
    case "$n" in
      mongo) ensure_go_tool ferretdb ;;
      mailpit) ensure_go_tool mailpit ;;
      stripe-mock) ensure_go_tool stripe-mock ;;
    esac
  done
}

cmd_install() {
  install_for "${ALL_SERVICES[@]}"
  log "installed: PostgreSQL, Redis, RabbitMQ (Debian packages), ferretdb $FERRETDB_VERSION, mailpit $MAILPIT_VERSION, stripe-mock $STRIPE_MOCK_VERSION (in $TOOLS_DIR)"
}

cmd_install_tools() {
  apt_ensure prometheus   # promtool and a Prometheus for the observability checks and test
  # Chromium for the console's browser tests; poppler-utils (pdftotext) to read invoice PDFs in tests.
  apt_ensure chromium poppler-utils
  ensure_go_tool actionlint
  ensure_go_tool kustomize
  ensure_venv
  local t
  for t in actionlint kustomize schemathesis kubernetes-validate; do
    log "$t: $(tool_bin "$t")"
  done
}
