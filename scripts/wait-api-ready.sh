#!/usr/bin/env bash
# Waits until the API of a deployed stack answers /health/ready, for the deploy workflow (deploy-stack.yml).
# Usage: scripts/wait-api-ready.sh <stack> <timeout-seconds>
# A stack with a public entry polls <apiUrl>/health/ready. A stack without one (tier network.publicIngress: false,
# i.e. dev: its apiUrl reads "port-forward: kubectl ...") is checked through the cluster's API server instead:
# the Deployment's rollout (its readiness probe is /health/ready), then /health/ready through a port-forward to
# the Service. Needs the Pulumi CLI, kubectl and the AWS CLI (kubeconfig uses `aws eks get-token`).
set -euo pipefail

stack=$1
timeout=$2
deadline=$((SECONDS + timeout))
api_url=$(pulumi stack output apiUrl --stack "$stack")

poll() { # poll <url>: until it answers 200 or the deadline passes
  until curl -fsS --max-time 10 "$1/health/ready"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "::error::$1/health/ready did not answer 200 within ${timeout}s"
      return 1
    fi
    sleep 15
  done
}

if [[ "$api_url" != port-forward:* ]]; then
  poll "${api_url%/}"
  exit
fi

# "port-forward: kubectl -n <namespace> port-forward svc/<service> <local>:<port>"
read -r -a command <<< "${api_url#port-forward: }"
namespace=${command[2]}
service=${command[4]#svc/}
port=${command[5]#*:}
kubeconfig=$(mktemp)
forward_pid=""
cleanup() {
  if [ -n "$forward_pid" ]; then kill "$forward_pid" 2>/dev/null || true; fi
  rm -f "$kubeconfig"
}
trap cleanup EXIT
pulumi stack output kubeconfig --show-secrets --stack "$stack" > "$kubeconfig"
export KUBECONFIG=$kubeconfig

remaining=$((deadline - SECONDS))
kubectl -n "$namespace" rollout status "deployment/$service" --timeout="$((remaining > 0 ? remaining : 1))s"
kubectl -n "$namespace" port-forward "svc/$service" "18080:$port" > /dev/null &
forward_pid=$!
poll "http://127.0.0.1:18080"
