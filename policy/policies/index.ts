// Every policy of the agent-stack pack, in the order the README lists them. The pack (policy/index.ts) and
// the offline runner (policy/offline.ts) both read this list; nothing here starts a policy server.
import type { Policies } from "@pulumi/policy";
import { computePolicies } from "./compute.ts";
import { costPolicies } from "./cost.ts";
import { durabilityPolicies } from "./durability.ts";
import { edgePolicies } from "./edge.ts";
import { encryptionPolicies } from "./encryption.ts";
import { exposurePolicies } from "./exposure.ts";
import { kubernetesPolicies } from "./kubernetes.ts";
import { registryPolicies } from "./registry.ts";
import { securityPolicies } from "./security.ts";

export const policies: Policies = [
  ...encryptionPolicies,
  ...exposurePolicies,
  ...computePolicies,
  ...durabilityPolicies,
  ...registryPolicies,
  ...kubernetesPolicies,
  ...edgePolicies,
  ...securityPolicies,
  ...costPolicies,
];
