#!/bin/bash
# Qdrant snapshot job (mounted into the qdrant-snapshot CronJob by qdrant-snapshots.ts).
# For every node and every collection on it, through Qdrant's REST API: create a snapshot, download it,
# check its SHA-256, upload it to $S3_URI/<YYYY-MM-DD>/<node>/<collection>/<snapshot>, then delete the
# downloaded file and the snapshot on the node. A failure does not stop the other collections, but the job
# exits non-zero so the CronJob's last successful time (the backup-freshness alert) stops advancing.
#
# Environment:
#   QDRANT_NODES    space-separated <node>=<base URL>, e.g. "qdrant-0=http://qdrant-0.qdrant-headless:6333"
#   QDRANT_API_KEY  sent as the api-key header (may be empty)
#   S3_URI          s3://<bucket>/<prefix>, no trailing slash
#   SCRATCH_DIR     where one snapshot at a time is downloaded
#   LIST_RETRIES, LIST_RETRY_DELAY, LIST_RETRY_SECONDS  a node's first call: retries, seconds between them and in
#                   all (default 30, 5 and 300)
set -uo pipefail

: "${QDRANT_NODES:?}" "${S3_URI:?}" "${SCRATCH_DIR:?}"
today=$(date -u +%F)
failures=0
uploaded=0

log() { printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }

qdrant() { curl --fail --silent --show-error --connect-timeout 10 -H "api-key: ${QDRANT_API_KEY:-}" "$@"; }

# Qdrant's answers, read with jq (the aws-cli image installs it: aws/aws-cli docker/Dockerfile at 2.27.63). An
# answer that is not Qdrant's list (a proxy's page, another shape) is an error: matched as text, it read as no
# collections, and the job succeeded with nothing uploaded.
collection_names() {
  jq -r 'if .status == "ok" and (.result.collections | type) == "array" then .result.collections[].name
         else error("not a list of collections") end'
}
snapshot_field() { jq -r --arg field "$1" '.result[$field] // empty'; }

safe_name() { [[ $1 =~ ^[A-Za-z0-9._-]+$ ]]; }

verify() {
  local file=$1 expected=$2 actual
  if [[ -z $expected ]]; then return 0; fi
  actual=$(sha256sum "$file" | cut -d' ' -f1)
  [[ $actual == "$expected" ]] || { log "checksum mismatch for $file: got $actual, Qdrant said $expected"; return 1; }
}

snapshot_collection() {
  local node=$1 url=$2 collection=$3 created name checksum file ok=1
  if ! created=$(qdrant -X POST "$url/collections/$collection/snapshots?wait=true"); then
    log "$node/$collection: creating the snapshot failed"
    return 1
  fi
  name=$(snapshot_field name <<<"$created" 2>/dev/null)
  checksum=$(snapshot_field checksum <<<"$created" 2>/dev/null)
  if ! safe_name "$name"; then
    log "$node/$collection: unexpected answer to the snapshot request: $created"
    return 1
  fi
  file="$SCRATCH_DIR/$name"
  if qdrant -o "$file" "$url/collections/$collection/snapshots/$name" \
    && verify "$file" "$checksum" \
    && aws s3 cp --only-show-errors "$file" "$S3_URI/$today/$node/$collection/$name"; then
    log "$node/$collection: uploaded $name"
  else
    log "$node/$collection: $name was not uploaded"
    ok=0
  fi
  rm -f "$file"
  if ! qdrant -X DELETE "$url/collections/$collection/snapshots/$name" >/dev/null; then
    log "$node/$collection: deleting $name on the node failed; it stays on the Qdrant volume"
    ok=0
  fi
  [[ $ok == 1 ]]
}

for entry in $QDRANT_NODES; do
  node=${entry%%=*}
  url=${entry#*=}
  # A node's first call is retried for up to five minutes: a new pod's address reaches the Qdrant nodes' network
  # policy seconds to minutes after the pod starts (aws-network-policy-agent issue #487; until then its packets are
  # dropped, and curl retries the connect timeout), and each retry of the Job is a new pod. Only this GET: a snapshot
  # request is not idempotent.
  if ! listing=$(qdrant --max-time 60 --retry "${LIST_RETRIES:-30}" --retry-delay "${LIST_RETRY_DELAY:-5}" \
    --retry-max-time "${LIST_RETRY_SECONDS:-300}" --retry-connrefused "$url/collections"); then
    log "$node: listing collections failed"
    failures=$((failures + 1))
    continue
  fi
  if ! collections=$(collection_names <<<"$listing" 2>/dev/null); then
    log "$node: the collection list is not Qdrant's: ${listing:0:200}"
    failures=$((failures + 1))
    continue
  fi
  if [[ -z $collections ]]; then
    log "$node: no collections"
    continue
  fi
  while IFS= read -r collection; do
    if ! safe_name "$collection"; then
      log "$node: collection name '$collection' has characters this job does not handle; not backed up"
      failures=$((failures + 1))
    elif snapshot_collection "$node" "$url" "$collection"; then
      uploaded=$((uploaded + 1))
    else
      failures=$((failures + 1))
    fi
  done <<<"$collections"
done

if ((failures > 0)); then
  log "FAILED: $failures collection snapshot(s) or node(s) failed; $uploaded uploaded to $S3_URI/$today/"
  exit 1
fi
log "done: $uploaded snapshot(s) uploaded to $S3_URI/$today/"
