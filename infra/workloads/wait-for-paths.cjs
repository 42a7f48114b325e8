// Init container of the API pod (api.ts), run as `node -e <this file> <seconds> <host:port>...` in the API's own image:
// waits until every address each host resolves to answers a TCP connect from this pod's address, for at most
// <seconds>, then exits 0 either way. The VPC CNI's network policy agent admits a new client pod to Qdrant and Ollama
// (their NetworkPolicies select the API by label) only once the agent on each receiving node has learned the pod's
// address, seconds to minutes after it starts (aws/aws-network-policy-agent#487); until then its connects are dropped
// and time out, while the pod was already Ready and taking requests. A refused connect (a peer not listening yet) or a
// name with no address (no ready endpoint) is no dropped path, and ends the wait too (the agent drops what a policy
// denies, never refuses it): an Ollama or Qdrant outage must not keep the API from starting, and its cached answers
// from being served.
const net = require("node:net");
const dns = require("node:dns").promises;

const TRY_MS = 2000;
const [seconds, ...targets] = process.argv.slice(1);
const deadline = Date.now() + Number(seconds) * 1000;
if (!(Number(seconds) > 0) || targets.length === 0 || targets.some((t) => !/^[^:]+:\d+$/.test(t))) {
  console.error("usage: node -e <script> <seconds> <host:port>...");
  process.exit(2);
}

/** "open", "refused" or "dropped" (no answer within TRY_MS, or a network error a moment may cure). */
const knock = (host, port) =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const end = (outcome) => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(TRY_MS, () => end("dropped"));
    socket.once("connect", () => end("open"));
    socket.once("error", (err) => end(err.code === "ECONNREFUSED" ? "refused" : "dropped"));
  });

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The addresses the name has now. A headless Service with no ready pod has no records (CoreDNS answers NXDOMAIN:
 * ENOTFOUND), as Ollama's has while its only pod starts: no endpoint, like a refused connect, and no wait. Only a
 * resolver not answering yet (EAI_AGAIN, SERVFAIL) is tried again.
 */
async function addressesOf(host) {
  while (Date.now() < deadline) {
    try {
      return (await dns.lookup(host, { all: true })).map((a) => a.address);
    } catch (err) {
      if (err.code === "ENOTFOUND") return [];
      await pause(1000);
    }
  }
  return [];
}

async function waitFor(target) {
  const [host, port] = target.split(":");
  const addresses = await addressesOf(host);
  await Promise.all(
    addresses.map(async (address) => {
      for (;;) {
        const started = Date.now();
        const outcome = await knock(address, Number(port));
        if (outcome !== "dropped") return console.log(`${target} ${address}: ${outcome}`);
        if (Date.now() >= deadline) return console.log(`${target} ${address}: no answer by the deadline; starting anyway`);
        await pause(Math.max(0, 500 - (Date.now() - started)));
      }
    }),
  );
  if (addresses.length === 0) console.log(`${target}: no address (no ready endpoint, or no answer by the deadline)`);
}

Promise.all(targets.map(waitFor)).then(() => process.exit(0));
