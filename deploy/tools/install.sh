#!/usr/bin/env bash
# Installs what validates deploy/ on a machine with no container runtime (test/unit/deploy.test.ts):
#   docker-compose      Debian's package (`docker-compose config` resolves and checks compose.yaml)
#   kubeconform         a Go module, built into .tools/bin
#   Kubernetes schemas  from the kubernetes-validate wheel on PyPI (it vendors each release's JSON
#                       schemas), bundled into kubeconform's standalone layout under .tools/k8s-schemas
# Each step is skipped when its result is already there. Root for apt-get (as CI and this machine run).
set -euo pipefail
cd "$(dirname "$0")/../.."

KUBECONFORM_VERSION=v0.8.0
K8S_SCHEMA_WHEEL=kubernetes-validate==1.37.0
# the Kubernetes releases the manifests are validated against (test/unit/deploy.test.ts reads this line)
K8S_VERSIONS="1.30.0 1.37.0"
TOOLS="$PWD/.tools"

if ! command -v docker-compose >/dev/null; then
  apt-get update -q && apt-get install -y -q --no-install-recommends docker-compose
fi

# `go install` builds report "development" for -v: a stamp file records the version built
if [ ! -x "$TOOLS/bin/kubeconform" ] || [ "$(cat "$TOOLS/bin/kubeconform.version" 2>/dev/null)" != "$KUBECONFORM_VERSION" ]; then
  GO="$(command -v go || echo /usr/local/go/bin/go)"
  if [ ! -x "$GO" ]; then
    apt-get update -q && apt-get install -y -q --no-install-recommends golang-go
    GO="$(command -v go)"
  fi
  # GOTOOLCHAIN=auto: an older Go fetches the toolchain kubeconform's go.mod asks for, from the module proxy
  GOBIN="$TOOLS/bin" GOTOOLCHAIN=auto "$GO" install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  echo "$KUBECONFORM_VERSION" >"$TOOLS/bin/kubeconform.version"
fi

for v in $K8S_VERSIONS; do
  if [ ! -f "$TOOLS/k8s-schemas/v$v-standalone-strict/deployment-apps-v1.json" ]; then
    wheel_dir="$(mktemp -d)"
    python3 -m pip --version >/dev/null 2>&1 ||
      { apt-get update -q && apt-get install -y -q --no-install-recommends python3-pip; }
    # download only: nothing is installed into any Python
    python3 -m pip download --quiet --no-deps --dest "$wheel_dir" "$K8S_SCHEMA_WHEEL"
    python3 deploy/tools/k8s-schemas.py "$wheel_dir"/*.whl "$TOOLS/k8s-schemas" $K8S_VERSIONS
    rm -rf "$wheel_dir"
    break
  fi
done

echo "deploy validators: $(docker-compose version --short), kubeconform $(cat "$TOOLS/bin/kubeconform.version"), schemas $K8S_VERSIONS"
