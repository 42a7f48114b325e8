#!/usr/bin/env bash
# Watches a freshly deployed stack for guide 002's rollback triggers ("Rollback Plan", "Rollback Trigger": roll back if
# within 1 hour of deployment the error rate is over 5 %, P95 latency over 10 s, the database cannot be connected to,
# or the cache is completely unavailable), for the deploy workflow (deploy-stack.yml), which rolls back when it fails.
# Usage: scripts/watch-after-deploy.sh <stack> <minutes>
# Once a minute for <minutes>, it asks the stack's Prometheus (its HTTP API, /api/v1/query) through a port-forward, as
# scripts/wait-api-ready.sh reaches dev's API: the stack output `kubeconfig`, then `kubectl port-forward`. That is not
# subject to the NetworkPolicies (infra/workloads/network-policies.ts monitoringIngress lets only Prometheus and Grafana
# pods reach 9090): it goes through the API server to the kubelet, whose runtime dials localhost:9090 from inside the
# pod's own network namespace (containerd pkg/cri/server/sandbox_portforward_linux.go: net.Dial in NetNS.Do), and
# loopback never crosses the pod's interface where the policy agent filters; README "Dashboards" relies on the same
# for Grafana. Needs the Pulumi CLI, kubectl, the AWS CLI (the kubeconfig runs `aws eks get-token`), curl and jq.
#
# What each trigger reads (monitoring/prometheus/rules, names in monitoring/metrics-catalogue.ts):
# - error rate: job:http_requests:server_error_ratio_rate5m, every 5xx per API request over 5 minutes (the series of
#   HighServerErrorRate; a Postgres outage fails routes without an agent error), above 0.05. Judged only while the API
#   serves at least MIN_RATE requests/s (job:http_requests:rate5m), 30 requests in 5 minutes: under 20 one failed request
#   is over 5 %, and with no traffic the ratio is 0/0. No traffic is no verdict, not a pass or a failure.
# - P95 latency: job_route:http_request_duration_seconds:p95_5m above 10 s on the routes HighApiLatency holds to guide
#   002's latency: not /api/v1/query (LLM inference, HighLatency's 30 s budget: a CPU-inference stack would roll back
#   every deploy) nor /api/v1/documents (an ingest grows with its body, SlowIngest). Only a route serving MIN_RATE
#   requests/s: below it one slow request is the p95.
# - database connection failures: pg_up of postgres-exporter at 0 (the series of PostgresDown).
# - cache completely unavailable: redis_up of redis-exporter at 0 (RedisDown), or every Redis operation of the API
#   failing (redis_operations_total, as ApiCacheErrors reads it: the exporter still reaches a Redis the API cannot use
#   after a rotated AUTH token, TLS or a network policy, which a deploy changes), with at least MIN_RATE operations/s.
# A series that is missing (an exporter not scraped yet) is no verdict for its trigger; one never seen is warned about.
#
# Guards: a trigger must hold on CONSECUTIVE (2) checks in a row, a minute apart, like the alerts' `for: 2m` on
# PostgresDown and RedisDown: one failed scrape, or one exporter's blip, does not roll back (the request rates' 5-minute
# windows already smooth one bad minute; the traffic floors keep a few requests from deciding). A check that finds the
# trigger clear, or without a verdict, starts the count again. A check that cannot reach Prometheus leaves the counts
# as they were (it says nothing of the service).
# Exit 1 with an `::error::` naming the trigger and its value when one holds. An unwatched window fails too rather
# than pass for a healthy one: Prometheus not reached by any check, or unreachable on UNREACHABLE_LIMIT (10) checks
# in a row (longer than a Prometheus pod's restart and WAL replay). The rollback it leads to re-deploys the previous
# commit's monitoring too, if this deploy broke it. Exit 0 at the end of the window otherwise.
set -euo pipefail

stack=$1
minutes=$2
CONSECUTIVE=2
UNREACHABLE_LIMIT=10
MIN_RATE=0.1
# kube-prometheus-stack 81.4.3 templates/prometheus/service.yaml: `<fullname>-prometheus` on values
# prometheus.service.port (9090); the release is infra/workloads/monitoring.ts KPS_RELEASE in NAMESPACES.monitoring
# (the names test/infra/runbook-names.prod-plan.ts checks in the kubectl command below). Forwarded to 19090.
PROM="http://127.0.0.1:19090"

if [ "$minutes" -le 0 ]; then
  echo "no post-deploy watch for $stack (0 minutes)"
  exit 0
fi

kubeconfig=$(mktemp)
forward_pid=""
cleanup() {
  if [ -n "$forward_pid" ]; then kill "$forward_pid" 2>/dev/null || true; fi
  rm -f "$kubeconfig"
}
trap cleanup EXIT
pulumi stack output kubeconfig --show-secrets --stack "$stack" > "$kubeconfig"
export KUBECONFIG=$kubeconfig

# (Again) when it is not running: a Prometheus pod replaced during the window ends kubectl's forward to it.
forward() {
  if [ -n "$forward_pid" ] && kill -0 "$forward_pid" 2>/dev/null; then return; fi
  kubectl -n monitoring port-forward svc/kube-prometheus-stack-prometheus 19090:9090 > /dev/null 2>&1 &
  forward_pid=$!
}

# ask <signal> <promql>: keeps Prometheus' answer in body[<signal>], and the signal in `asked`, for `read_answers`.
# Fails when Prometheus cannot be asked. --retry-connrefused: a forward just started is not listening yet.
declare -A body=() series=() high=() low=() text=()
asked=()
ask() {
  asked+=("$1")
  body[$1]=$(curl -fsS --max-time 10 --retry 3 --retry-connrefused --retry-delay 2 -G --data-urlencode "query=$2" \
    "$PROM/api/v1/query") || return 1
}

# read_answers: from each signal's answer, series[<signal>] (how many), high[<signal>] and low[<signal>] (the highest
# and lowest value, "NaN" when there is none but NaN) and text[<signal>] (each value with the label that tells it
# apart: "12.5 on /api/v1/sessions"). One jq for the check's answers, in the order they were asked (a jq per answer
# was most of a check's time). Fails when an answer is not Prometheus' success.
read_answers() {
  local lines rows i
  lines=$(for i in "${asked[@]}"; do printf '%s\n' "${body[$i]}"; done | jq -er '
    def num: if . == "+Inf" then infinite elif . == "-Inf" then -infinite else tonumber end;
    if .status != "success" then error("not success") else . end | .data.result
    | ([.[] | .value[1] | select(. != "NaN")] | sort_by(num)) as $sorted
    | [length, ($sorted | last // "NaN"), ($sorted | first // "NaN"),
       (map("\(.value[1])\(if .metric.route then " on \(.metric.route)"
         elif .metric.instance then " at \(.metric.instance)" else "" end)") | join(", "))]
    | @tsv' 2> /dev/null) || return 1
  mapfile -t rows <<< "$lines"
  [ "${#rows[@]}" -eq "${#asked[@]}" ] || return 1
  for i in "${!asked[@]}"; do
    IFS=$'\t' read -r "series[${asked[i]}]" "high[${asked[i]}]" "low[${asked[i]}]" "text[${asked[i]}]" <<< "${rows[i]}"
  done
}

# holds <value> <op> <bound>, op one of > >= <: on Prometheus' value strings ("NaN" holds nothing, "+Inf" is above all).
holds() {
  awk -v v="$1" -v op="$2" -v b="$3" 'BEGIN {
    if (v == "NaN") exit 1
    x = v == "+Inf" ? 1e308 : v == "-Inf" ? -1e308 : v + 0
    exit !(op == ">" ? x > b : op == ">=" ? x >= b : x < b)
  }'
}

# judge <trigger> <what it read> <value> <op> <bound>: the trigger holds when the value does (`holds`), else is clear.
judge() {
  detail[$1]=$2
  if holds "$3" "$4" "$5"; then verdict[$1]=hold; else verdict[$1]=clear; fi
}

# no_verdict <trigger> <why>: nothing to judge it on in this check.
no_verdict() {
  verdict[$1]=none
  detail[$1]="no verdict: $2"
}

API='job="agent-api"'
KEYS=(errors latency database cache)
declare -A LABEL=(
  [errors]="error rate > 5%"
  [latency]="P95 latency > 10s"
  [database]="database connection failures"
  [cache]="cache completely unavailable"
)
# held: checks in a row on which the trigger held; seen: whether any check had a verdict on it.
declare -A held=() seen=() verdict=() detail=()
for k in "${KEYS[@]}"; do
  held[$k]=0
  seen[$k]=0
done

# One check: each trigger's verdict (hold, clear or none) and what it read. Fails when a query fails.
check() {
  asked=()
  ask traffic "sum(job:http_requests:rate5m{$API})" || return 1
  ask ratio "job:http_requests:server_error_ratio_rate5m{$API}" || return 1
  ask p95 "job_route:http_request_duration_seconds:p95_5m{$API, route!~\"/api/v1/(query|documents)\"}
    and on (job, route) sum by (job, route) (rate(http_requests_total{$API, route=~\"/api/.+\"}[5m])) >= $MIN_RATE" || return 1
  ask pg "pg_up" || return 1
  ask redis "redis_up" || return 1
  ask redis_api "(sum by (job) (rate(redis_operations_total{$API, result=\"error\"}[5m]))
      or sum by (job) (rate(redis_operations_total{$API}[5m])) * 0)
    / sum by (job) (rate(redis_operations_total{$API}[5m]))
    and on (job) sum by (job) (rate(redis_operations_total{$API}[5m])) >= $MIN_RATE" || return 1
  read_answers || return 1

  local rate=${high[traffic]/NaN/0}
  if [ "${series[ratio]}" -eq 0 ] || ! holds "$rate" ">=" "$MIN_RATE"; then
    no_verdict errors "$rate API requests/s, under $MIN_RATE"
  else
    judge errors "5xx ratio ${high[ratio]} at $rate API requests/s" "${high[ratio]}" ">" 0.05
  fi

  if [ "${series[p95]}" -eq 0 ]; then
    no_verdict latency "no route but /api/v1/query and /api/v1/documents at $MIN_RATE requests/s"
  else
    judge latency "p95 seconds ${text[p95]}" "${high[p95]}" ">" 10
  fi

  if [ "${series[pg]}" -eq 0 ]; then
    no_verdict database "no pg_up series (postgres-exporter not scraped)"
  else
    judge database "pg_up ${text[pg]}" "${low[pg]}" "<" 1
  fi

  # Either of its two signals: the exporter's view, or the API's own operations.
  if [ "${series[redis]}" -gt 0 ] && [ "${series[redis_api]}" -gt 0 ]; then
    judge cache "redis_up ${text[redis]}; API Redis operations failing: ${high[redis_api]}" "${low[redis]}" "<" 1
    if holds "${high[redis_api]}" ">=" 1; then verdict[cache]=hold; fi
  elif [ "${series[redis]}" -gt 0 ]; then
    judge cache "redis_up ${text[redis]}" "${low[redis]}" "<" 1
  elif [ "${series[redis_api]}" -gt 0 ]; then
    judge cache "API Redis operations failing: ${high[redis_api]}" "${high[redis_api]}" ">=" 1
  else
    no_verdict cache "no redis_up series, and under $MIN_RATE API Redis operations/s"
  fi
}

reached=0
unreachable=0
start=$SECONDS
echo "watching $stack for $minutes minutes (guide 002's rollback triggers), a check a minute"
for ((n = 1; n <= minutes; n++)); do
  wait_for=$((start + n * 60 - SECONDS))
  if [ "$wait_for" -gt 0 ]; then sleep "$wait_for"; fi
  forward
  if ! check; then
    unreachable=$((unreachable + 1))
    echo "check $n/$minutes: Prometheus ($PROM through svc/kube-prometheus-stack-prometheus) did not answer ($unreachable in a row)"
    if [ "$unreachable" -ge "$UNREACHABLE_LIMIT" ]; then
      echo "::error::Prometheus of $stack unreachable on $unreachable checks in a row: guide 002's rollback triggers cannot be watched"
      exit 1
    fi
    continue
  fi
  reached=$((reached + 1))
  unreachable=0
  for k in "${KEYS[@]}"; do
    echo "check $n/$minutes: ${LABEL[$k]}: ${verdict[$k]} (${detail[$k]})"
    if [ "${verdict[$k]}" != none ]; then seen[$k]=1; fi
    if [ "${verdict[$k]}" = hold ]; then held[$k]=$((held[$k] + 1)); else held[$k]=0; fi
    if [ "${held[$k]}" -ge "$CONSECUTIVE" ]; then
      echo "::error::rollback trigger (guide 002) on $stack: ${LABEL[$k]}, on $CONSECUTIVE checks in a row: ${detail[$k]}"
      exit 1
    fi
  done
done

if [ "$reached" -eq 0 ]; then
  echo "::error::Prometheus of $stack was not reached in $minutes minutes: guide 002's rollback triggers were not watched"
  exit 1
fi
for k in "${KEYS[@]}"; do
  if [ "${seen[$k]}" -eq 0 ]; then echo "::warning::no verdict on \"${LABEL[$k]}\" in $stack's $minutes minutes: ${detail[$k]}"; fi
done
echo "no rollback trigger held on $stack in $minutes minutes ($reached checks reached Prometheus)"
