// The guide's shape of each tier: the same stack with the instance types and counts the guides name (guide 000
// "Self-Hosted on AWS" for medium; the pre-issue-15 guide-derived sizing for the others), as
// `agent-stack:overrides` over the tier. `npm run bench:cost` prices each with the same estimator as the tier
// itself, so the ratio compares topology, not price tables or usage assumptions.
//
// medium reproduces the figures of issue 15 ($7,193 on demand / $6,701 with the 00:00-06:00 scale-down, us-east-1,
// 730 h): the guide's table, 5 API nodes (off-peak 2), 2 GPU nodes (off-peak 1), no read replica (the table lists
// none), the plan's cache, storage, network, backups and logs. The estimator now also prices the Qdrant volumes'
// recovery points in the backup vault, which adds the same amount to the guide shape and to the tier.

const group = (instanceType: string, min: number, desired: number, max: number, diskGb: number) => ({
  instanceTypes: [instanceType],
  capacityType: "ON_DEMAND",
  min,
  desired,
  max,
  diskGb,
});

export const GUIDE_SHAPES: Record<string, { reference: string; overrides: Record<string, unknown> }> = {
  dev: {
    reference:
      "000 Deployment Sizes 'Development: 1 server, no GPU': one on-demand t3.xlarge, a NAT gateway, an ALB, db.t4g.small",
    overrides: {
      // The ALB stays in the guide's shape (a served endpoint, as every guide deployment has); dev itself has none.
      network: { natGateways: "single", publicIngress: true },
      nodeGroups: { general: group("t3.xlarge", 1, 1, 2, 50) },
      database: { instanceClass: "db.t4g.small", replicaInstanceClass: "db.t4g.small" },
    },
  },
  small: {
    reference: "000 Hardware Requirements 'Minimum': c6i.xlarge x3, r6i.xlarge, g5.2xlarge, t3.large, db.m6i.xlarge Multi-AZ",
    overrides: {
      nodeGroups: {
        general: group("c6i.xlarge", 3, 3, 5, 50),
        vector: group("r6i.xlarge", 1, 1, 2, 50),
        gpu: group("g5.2xlarge", 1, 1, 2, 100),
        monitoring: group("t3.large", 1, 1, 1, 50),
      },
      database: { instanceClass: "db.m6i.xlarge", replicaInstanceClass: "db.m6i.large" },
      ollama: { storageGb: 100 },
    },
  },
  medium: {
    reference: "000 Self-Hosted on AWS: c6i.2xlarge x5, r6i.2xlarge x3, g5.4xlarge x2, t3.large, db.r6i.2xlarge Multi-AZ",
    overrides: {
      nodeGroups: {
        general: group("c6i.2xlarge", 5, 5, 5, 100),
        vector: group("r6i.2xlarge", 3, 3, 3, 50),
        gpu: group("g5.4xlarge", 1, 2, 3, 200),
        monitoring: group("t3.large", 1, 1, 1, 50),
      },
      database: { instanceClass: "db.r6i.2xlarge", readReplicas: 0, replicaInstanceClass: "db.r6i.xlarge" },
      ollama: { storageGb: 200 }, // the tier's Ollama memory (requests == limits) fits the larger node; memory is not priced
    },
  },
  large: {
    reference:
      "000 Deployment Sizes 'Large Production': medium's types scaled out (c6i.2xlarge x6-12, r6i.2xlarge x5, g5.4xlarge x6, t3.xlarge x2, db.r6i.4xlarge)",
    overrides: {
      nodeGroups: {
        general: group("c6i.2xlarge", 6, 6, 12, 100),
        vector: group("r6i.2xlarge", 5, 5, 5, 50),
        gpu: group("g5.4xlarge", 2, 6, 10, 200),
        monitoring: group("t3.xlarge", 2, 2, 2, 50),
      },
      database: { instanceClass: "db.r6i.4xlarge", replicaInstanceClass: "db.r6i.2xlarge" },
      ollama: { storageGb: 200 }, // the tier's Ollama memory (requests == limits) fits the larger node; memory is not priced
    },
  },
};
