// The dev NAT instance's boot script, run for real with bash, its system commands replaced on PATH by stubs that log
// their arguments: the package install is retried while the instance has no way out yet (no address on a first boot).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { NAT_INSTALL_TRIES, natUserData } from "../../infra/platform/nat-instance.ts";

/**
 * Runs the script with `dnf` failing its first `failures` calls, and the commands `failing` failing every call; returns
 * the exit code and the stubs' log.
 */
function boot(failures: number, failing: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), "nat-boot-"));
  const log = join(dir, "calls.log");
  const stub = (name: string, body = "") =>
    writeFileSync(join(dir, name), `#!/bin/bash\necho "${name} $*" >> ${log}\n${body}\n`, { mode: 0o755 });
  const counter = join(dir, "dnf.count");
  writeFileSync(counter, "0");
  stub("dnf", `n=$(( $(cat ${counter}) + 1 )); echo $n > ${counter}; [ $n -gt ${failures} ]`);
  for (const name of ["sysctl", "iptables", "service", "systemctl", "sleep"]) stub(name, failing.includes(name) ? "exit 1" : "");
  stub("ip", 'echo "default via 10.0.0.1 dev ens5 proto dhcp"');
  const script = join(dir, "user-data.sh");
  // The script writes /etc/sysctl.d; here the same line writes into the scratch directory.
  writeFileSync(script, natUserData("10.0.0.0/16").replace("/etc/sysctl.d/", `${dir}/`));
  chmodSync(script, 0o755);
  const run = spawnSync("bash", [script], { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: "utf8" });
  return { status: run.status, calls: readFileSync(log, "utf8").trim().split("\n") };
}

test("the NAT instance retries its package install until it has a way out, then sets up the masquerade", () => {
  const { status, calls } = boot(3);
  assert.equal(status, 0);
  assert.deepEqual(
    calls.filter((c) => c.startsWith("dnf")),
    Array(4).fill("dnf install -y iptables-services"),
  );
  assert.ok(calls.includes("iptables -t nat -A POSTROUTING -o ens5 -s 10.0.0.0/16 -j MASQUERADE"), calls.join("\n"));
  // The forwarding setting is applied now, not at the next boot: the file alone leaves the instance dropping the traffic.
  assert.ok(calls.includes("sysctl --system"), calls.join("\n"));
  assert.ok(calls.indexOf("sysctl --system") < calls.findIndex((c) => c.startsWith("iptables")));
});

test("the NAT instance's boot fails when the masquerade cannot be set up, instead of reporting success", () => {
  const { status, calls } = boot(0, ["iptables"]);
  assert.notEqual(status, 0);
  assert.ok(!calls.some((c) => c.startsWith("systemctl")), calls.join("\n"));
});

test("the NAT instance's boot fails, setting up nothing, once every try of the install failed", () => {
  const { status, calls } = boot(NAT_INSTALL_TRIES);
  assert.equal(status, 1);
  assert.equal(calls.filter((c) => c.startsWith("dnf")).length, NAT_INSTALL_TRIES);
  assert.equal(calls.filter((c) => c.startsWith("iptables")).length, 0);
});
