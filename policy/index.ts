// The CrossGuard policy pack: `pulumi preview --policy-pack policy` (see policy/README.md). This is the only
// module that constructs the PolicyPack, because constructing it starts the pack's gRPC server.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies/index.ts";

new PolicyPack("agent-stack", {
  description: "Security, durability and cost guardrails for the self-hosted AI agent stack (AWS + EKS).",
  policies,
});
