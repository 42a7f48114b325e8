// Every action and condition key of the prod stack's IAM policy documents exists (test/support/iam-reference.ts).
import { testIamNames } from "../support/iam-reference.ts";

testIamNames("prod", { documents: 28, actions: 250, conditionKeys: 19 });
