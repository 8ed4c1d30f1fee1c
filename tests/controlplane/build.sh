#!/usr/bin/env bash
# Build a real kube-apiserver and etcd from their Go modules for the
# "controlplane" test tier (the envtest / KUBEBUILDER_ASSETS layout: the two
# binaries side by side in one directory).
#
# Why build instead of download: the machine that runs this only reaches
# package registries, and the Go module proxy is one of them.  The binaries
# land in a cache OUTSIDE the repository and are reused, so only the first run
# pays (about 8 minutes cold on 2 cores; about 20 s to relink with a warm Go
# build cache, e.g. after deleting the binaries).
#
# Output contract: the LAST line of stdout is
#     KUBEBUILDER_ASSETS=<dir>
# so callers can `eval "$(tests/controlplane/build.sh | tail -n1)"`.
# Everything else (go's chatter, progress) goes to stderr.
#
# Environment:
#   GITOPS_CRON_CACHE  cache root (default $HOME/.cache/gitops-cron)
#   GO                 go binary to use (default: `go` on PATH, then /usr/local/go/bin/go)
#
# Exit status: 0 when the binaries exist (built or reused) or when no Go
# toolchain is present (nothing to do; the tests then skip); non-zero when Go
# is present and the build fails, so CI notices.
set -euo pipefail

# Pinned versions.  tests/controlplane/fixture.py reads these two lines to find
# the same cache directory, so keep the `NAME=vX.Y.Z` shape.
K8S_VERSION=v1.37.2
ETCD_VERSION=v3.6.16

log() { printf 'build.sh: %s\n' "$*" >&2; }
built() { [[ -x "$1" ]] && log "$(basename "$1") already built"; }

cache_root="${GITOPS_CRON_CACHE:-${HOME}/.cache/gitops-cron}"
assets_dir="${cache_root}/controlplane/${K8S_VERSION}-${ETCD_VERSION}"
src_root="${cache_root}/controlplane/src"

if [[ -x "${assets_dir}/kube-apiserver" && -x "${assets_dir}/etcd" ]]; then
    log "reusing ${assets_dir}"
    echo "KUBEBUILDER_ASSETS=${assets_dir}"
    exit 0
fi

go_bin="${GO:-}"
if [[ -z "${go_bin}" ]]; then
    if command -v go >/dev/null 2>&1; then
        go_bin="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then
        go_bin=/usr/local/go/bin/go
    fi
fi
if [[ -z "${go_bin}" ]] || ! "${go_bin}" version >/dev/null 2>&1; then
    echo "build.sh: no usable Go toolchain (checked \$GO, go on PATH, /usr/local/go/bin/go); not building kube-apiserver/etcd, controlplane tests will skip" >&2
    exit 0
fi
log "using $("${go_bin}" version)"

mkdir -p "${assets_dir}" "${src_root}"

# Two builds running at once (two CI jobs on one runner, or a human and a test
# run) would otherwise race on the scratch modules.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${cache_root}/controlplane/.build.lock"
    flock 9
    if [[ -x "${assets_dir}/kube-apiserver" && -x "${assets_dir}/etcd" ]]; then
        log "built by a concurrent run; reusing ${assets_dir}"
        echo "KUBEBUILDER_ASSETS=${assets_dir}"
        exit 0
    fi
fi

# Static binaries: nothing on the test machine needs to match a libc.
export CGO_ENABLED=0
# Module and build caches stay at go's defaults (outside the repo), so a rerun
# after a failure, or a version bump, only recompiles what changed.

build_etcd() {
    local out="${assets_dir}/etcd"
    if built "${out}"; then
        return
    fi
    local mod="${src_root}/etcd-${ETCD_VERSION}"
    mkdir -p "${mod}"
    # etcd's own binary is just etcdmain.Main behind a main package; this is
    # the same thing, pinned to the release's server module.
    cat >"${mod}/go.mod" <<EOF
module gitopscron.local/etcd

go 1.24

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
EOF
    cat >"${mod}/main.go" <<'EOF'
// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
EOF
    log "resolving go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
    (cd "${mod}" && "${go_bin}" mod tidy >&2)
    log "building etcd ${ETCD_VERSION}"
    (cd "${mod}" && "${go_bin}" build -trimpath -ldflags "-s -w" -o "${out}.tmp" . >&2)
    mv -f "${out}.tmp" "${out}"
}

build_kube_apiserver() {
    local out="${assets_dir}/kube-apiserver"
    if built "${out}"; then
        return
    fi
    local mod="${src_root}/kube-apiserver-${K8S_VERSION}"
    mkdir -p "${mod}"

    # k8s.io/kubernetes names its staging modules (k8s.io/api, client-go, ...)
    # at v0.0.0 and points them at ./staging via `replace`, which Go ignores in
    # a dependency.  Read that replace list from the pinned go.mod itself and
    # point each entry at the published v0.X.Y tag, so the list follows the
    # version instead of being hand-maintained.
    log "fetching k8s.io/kubernetes@${K8S_VERSION} go.mod"
    local upstream_mod
    upstream_mod="$(cd "${mod}" && "${go_bin}" mod download -json "k8s.io/kubernetes@${K8S_VERSION}" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    if [[ -z "${upstream_mod}" || ! -f "${upstream_mod}" ]]; then
        log "could not locate the go.mod of k8s.io/kubernetes@${K8S_VERSION}"
        exit 1
    fi
    local staging_version="v0.${K8S_VERSION#v1.}"
    local replaces
    replaces="$(awk -v ver="${staging_version}" '
        /=>[[:space:]]*\.\/staging\// {
            line = $0
            sub(/^[[:space:]]*replace[[:space:]]+/, "", line)
            split(line, parts, /[[:space:]]*=>[[:space:]]*/)
            name = parts[1]
            gsub(/[[:space:]]/, "", name)
            printf "\t%s => %s %s\n", name, name, ver
        }' "${upstream_mod}")"
    if [[ -z "${replaces}" ]]; then
        log "found no ./staging replace directives in ${upstream_mod}"
        exit 1
    fi
    log "replacing $(printf '%s\n' "${replaces}" | wc -l) staging modules with ${staging_version}"
    # Keep upstream's `go` and `godebug` lines: the main module decides the
    # default GODEBUG settings baked into the binary.
    local go_line godebug_lines
    go_line="$(grep -m1 -E '^go [0-9]' "${upstream_mod}")"
    godebug_lines="$(grep -E '^godebug ' "${upstream_mod}" || true)"

    {
        echo "module gitopscron.local/kube-apiserver"
        echo
        echo "${go_line}"
        echo
        [[ -n "${godebug_lines}" ]] && printf '%s\n\n' "${godebug_lines}"
        echo "require k8s.io/kubernetes ${K8S_VERSION}"
        echo
        echo "replace ("
        printf '%s\n' "${replaces}"
        echo ")"
    } >"${mod}/go.mod"
    rm -f "${mod}/go.sum"

    log "resolving k8s.io/kubernetes/cmd/kube-apiserver@${K8S_VERSION}"
    (cd "${mod}" && "${go_bin}" get "k8s.io/kubernetes/cmd/kube-apiserver@${K8S_VERSION}" >&2)

    # What hack/lib/version.sh stamps, so /version reports the real release.
    local build_date minor ldflags="-s -w" pkg
    build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
        ldflags+=" -X ${pkg}.gitMajor=1"
        ldflags+=" -X ${pkg}.gitMinor=${minor}"
        ldflags+=" -X ${pkg}.gitTreeState=clean"
        ldflags+=" -X ${pkg}.buildDate=${build_date}"
    done

    log "building kube-apiserver ${K8S_VERSION} (slow the first time: ~8 min on 2 cores)"
    (cd "${mod}" && "${go_bin}" build -trimpath -ldflags "${ldflags}" -o "${out}.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2)
    mv -f "${out}.tmp" "${out}"
}

start=${SECONDS}
build_etcd
build_kube_apiserver
log "done in $((SECONDS - start))s"
"${assets_dir}/kube-apiserver" --version >&2 || true
echo "KUBEBUILDER_ASSETS=${assets_dir}"
