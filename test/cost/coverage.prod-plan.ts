// The prod stack (tier medium) runs under mocks and every resource it declares is priced or declared free.
import { TIERS } from "../../infra/tiers.ts";
import { describeStackCoverage } from "./coverage.ts";

// Guide 000 prices the medium shape at ~$5,680/month; a factor of two either way means a unit is wrong.
describeStackCoverage("prod", { onDemandBetween: [TIERS.medium.guide.monthlyUsd / 2, TIERS.medium.guide.monthlyUsd * 2] });
