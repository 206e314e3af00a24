#!/usr/bin/env bash
# The mesh-init service of docker-compose.yml: once sluice-server is ready, it signs in as the
# first admin, writes the mesh's root certificate and one fresh workload token per identity
# given as an argument (NAMESPACE/SERVICE-ACCOUNT) to $IDENTITY_DIR, which the proxies mount
# read-only, and on the first run applies examples/demo/config (the Bookinfo gateway, the
# DestinationRules and mesh-wide STRICT mutual TLS).
#
# Every run makes new tokens (the server may have a new database); the old ones are left to
# expire (720h), or revoke them with sluicectl token revoke.
set -euo pipefail

: "${SLUICE_SERVER:?set SLUICE_SERVER to the API address of sluice-server, such as http://sluice-server:8080}"
: "${SLUICE_ADMIN_PASSWORD:?set SLUICE_ADMIN_PASSWORD to the first admin password}"
dir=${IDENTITY_DIR:-/var/run/sluice}
config=${DEMO_CONFIG_DIR:-/src/examples/demo/config}
proxy_uid=${PROXY_UID:-65532}

for i in $(seq 1 120); do
	curl -fs -o /dev/null "$SLUICE_SERVER/readyz" && break
	[ "$i" = 120 ] && { echo "mesh-init: $SLUICE_SERVER/readyz did not answer 200 in 2 minutes" >&2; exit 1; }
	sleep 1
done

SLUICE_CONFIG=$(mktemp -d)/config.json
export SLUICE_CONFIG
printf '%s\n' "$SLUICE_ADMIN_PASSWORD" | sluicectl login --username admin --password-stdin
trap 'sluicectl logout >/dev/null 2>&1 || true' EXIT

umask 077
mkdir -p "$dir"
chmod 0755 "$dir" # the proxies' user reads the files it is given
curl -fsS "$SLUICE_SERVER/api/v1/ca/root" >"$dir/.root-cert.pem"
chmod 0644 "$dir/.root-cert.pem"
mv "$dir/.root-cert.pem" "$dir/root-cert.pem"

for id in "$@"; do
	ns=${id%%/*} sa=${id#*/}
	if [ -z "$ns" ] || [ -z "$sa" ] || [ "$ns" = "$id" ]; then
		echo "mesh-init: $id is not NAMESPACE/SERVICE-ACCOUNT" >&2
		exit 2
	fi
	file="$dir/$ns.$sa.token"
	sluicectl token create workload --namespace "$ns" --service-account "$sa" --name "docker compose $id" >"$file.new"
	grep -q '^slcw_' "$file.new" || { echo "mesh-init: no workload token for $id" >&2; exit 1; }
	chown "$proxy_uid:$proxy_uid" "$file.new"
	mv "$file.new" "$file"
	echo "mesh-init: workload token for spiffe://cluster.local/ns/$ns/sa/$sa written to $file"
done

if ! sluicectl get gateway bookinfo-gateway >/dev/null 2>&1; then
	sluicectl apply -f "$config"
fi
