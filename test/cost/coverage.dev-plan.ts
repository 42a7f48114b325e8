// The dev stack (tier dev) runs under mocks and every resource it declares is priced or declared free.
import { describeStackCoverage } from "./coverage.ts";

// One small node, burstable database and cache, one NAT: a few hundred dollars on-demand, never thousands.
describeStackCoverage("dev", { onDemandBetween: [50, 1500] });
