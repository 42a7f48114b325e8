// Pulumi entry point (Pulumi.yaml `main`). The program lives in stack.ts so the offline plan and the
// tests can run the very same code under mocks.
import { buildStack } from "./stack.ts";

export default async function main() {
  return (await buildStack()).outputs;
}
