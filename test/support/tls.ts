// TLS for a test's own servers (Postgres, Redis), as RDS and ElastiCache serve it: a certificate for one host name.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** A self-signed certificate for `host` (its own CA) and its key, PEM: a server's TLS in a test. */
export function selfSignedCert(host: string): { cert: string; key: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "agent-cert-"));
  const [cert, key] = [path.join(dir, "cert.pem"), path.join(dir, "key.pem")];
  try {
    const subject = ["-subj", `/CN=${host}`, "-addext", `subjectAltName=DNS:${host}`];
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    execFileSync("openssl", ["req", "-x509", ...ec, "-nodes", "-days", "1", ...subject, "-keyout", key, "-out", cert], {
      stdio: "ignore",
    });
    return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
