// Every action and condition key of the dev stack's IAM policy documents exists (test/support/iam-reference.ts).
import { testIamNames } from "../support/iam-reference.ts";

testIamNames("dev", { documents: 27, actions: 250, conditionKeys: 19 });
