// PostgreSQL's tuning for an RDS class (guide 000's ratios scaled to the class's memory), and why a class or a
// connection count cannot be tuned: read by the tier schema, which refuses such a config naming its key, and by the
// database's parameter groups.

/** Memory of the RDS classes a tier may name (GiB). */
export const DB_MEMORY_GIB: Record<string, number> = {
  "db.t4g.micro": 1,
  "db.t4g.small": 2,
  "db.t4g.medium": 4,
  "db.t4g.large": 8,
  "db.m6i.large": 8,
  "db.m6i.xlarge": 16,
  "db.m6i.2xlarge": 32,
  "db.m6g.large": 8,
  "db.m6g.xlarge": 16,
  "db.m7g.large": 8,
  "db.m7g.xlarge": 16,
  "db.m7g.2xlarge": 32,
  "db.r6i.large": 16,
  "db.r6i.xlarge": 32,
  "db.r6i.2xlarge": 64,
  "db.r6i.4xlarge": 128,
  "db.r6i.8xlarge": 256,
  "db.r6g.large": 16,
  "db.r6g.xlarge": 32,
  "db.r6g.2xlarge": 64,
  "db.r6g.4xlarge": 128,
};

/** vCPUs of the same classes (RDS User Guide, "Hardware specifications for DB instance classes"). */
export const DB_VCPUS: Record<string, number> = {
  "db.t4g.micro": 2,
  "db.t4g.small": 2,
  "db.t4g.medium": 2,
  "db.t4g.large": 2,
  "db.m6i.large": 2,
  "db.m6i.xlarge": 4,
  "db.m6i.2xlarge": 8,
  "db.m6g.large": 2,
  "db.m6g.xlarge": 4,
  "db.m7g.large": 2,
  "db.m7g.xlarge": 4,
  "db.m7g.2xlarge": 8,
  "db.r6i.large": 2,
  "db.r6i.xlarge": 4,
  "db.r6i.2xlarge": 8,
  "db.r6i.4xlarge": 16,
  "db.r6i.8xlarge": 32,
  "db.r6g.large": 2,
  "db.r6g.xlarge": 4,
  "db.r6g.2xlarge": 8,
  "db.r6g.4xlarge": 16,
};

/**
 * max_worker_processes a read replica needs: at least its source's (PostgreSQL "Hot Standby", administrator's
 * overview: max_connections, max_prepared_transactions, max_locks_per_transaction, max_wal_senders and
 * max_worker_processes must be no smaller on a standby than on the primary, or it allows no queries; a standby that
 * starts below them aborts recovery). RDS's default is per class, GREATEST(${DBInstanceVCPU*2},8) (the postgres16
 * default parameter group), so a replica of fewer vCPUs than its source (medium: db.m7g.2xlarge's 16, db.r6g.xlarge's
 * 8) got less. The other four are the same on both: max_connections is the tier's, the rest RDS's fixed defaults.
 */
export function replicaWorkerProcesses(sourceClass: string, replicaClass: string): number {
  const workers = (instanceClass: string) => Math.max(DB_VCPUS[instanceClass]! * 2, 8);
  return Math.max(workers(sourceClass), workers(replicaClass));
}

/** PostgreSQL's least work_mem, in kB (guc_tables.c); RDS refuses a parameter group below it. */
const MIN_WORK_MEM_KB = 64;

const kibOf = (gib: number) => gib * 1024 * 1024;
/** kB per connection: 40 % of memory over the connections, four buffers each (a query may use several). */
const workMem = (kib: number, connections: number) => Math.floor((kib * 0.4) / connections / 4);

/** Why `instanceClass` cannot be tuned for `maxConnections`, or undefined when it can. */
export function tuningProblem(
  instanceClass: string,
  maxConnections: number,
): { on: "class" | "connections"; message: string } | undefined {
  const gib = DB_MEMORY_GIB[instanceClass];
  if (!gib)
    return { on: "class", message: `no memory size known for ${instanceClass}; known: ${Object.keys(DB_MEMORY_GIB).join(", ")}` };
  if (workMem(kibOf(gib), maxConnections) >= MIN_WORK_MEM_KB) return undefined;
  const most = Math.floor((kibOf(gib) * 0.4) / 4 / MIN_WORK_MEM_KB);
  return {
    on: "connections",
    message: `${maxConnections} leaves work_mem below PostgreSQL's 64 kB on ${instanceClass} (${gib} GiB); at most ${most}`,
  };
}

/**
 * Guide 000 runs postgres with max_connections=200, shared_buffers=2GB, effective_cache_size=6GB,
 * work_mem=16MB, maintenance_work_mem=512MB on an 8 GB host: 25 % / 75 % of RAM, RAM/16, and
 * 40 % of RAM spread over the connections. The same ratios scale to any instance. The config has been checked
 * with tuningProblem (tier-schema.ts).
 *
 * The memory settings are RDS formulas of the instance's own memory (DBInstanceClassMemory, bytes: RDS User Guide,
 * "Specifying DB parameters", DB parameter formulas `{Variable/Integer}`, `{Variable*Integer/Integer}` and the
 * functions GREATEST and LEAST), as RDS's default group states shared_buffers, not numbers of the class planned: a
 * group is changed at once (pending-reboot) while a new instanceClass waits for the maintenance window, and any
 * restart between the two (a Multi-AZ failover, dev's nightly stop and start) ran the old class with the new class's
 * numbers: a db.t4g.micro (1 GiB) moving to db.t4g.medium would have started with 1 GiB of shared_buffers.
 * RDS reserves some memory for itself, so each setting comes out a little below the same share of the class's size.
 */
export function postgresTuning(instanceClass: string, maxConnections: number): Record<string, number | string> {
  const problem = tuningProblem(instanceClass, maxConnections);
  if (problem) throw new Error(problem.message);
  // Bytes of memory per unit: 8 kB pages for the buffers, kB for the working memory.
  const pages = 8 * 1024;
  return {
    max_connections: maxConnections,
    shared_buffers: `{DBInstanceClassMemory/${4 * pages}}`,
    effective_cache_size: `{DBInstanceClassMemory*3/${4 * pages}}`,
    // 40 % over the connections, four buffers each (workMem): bytes / (connections x 4 x 1024 / 0.4) kB, never below
    // PostgreSQL's least.
    work_mem: `GREATEST({DBInstanceClassMemory/${maxConnections * 10_240}},${MIN_WORK_MEM_KB})`,
    maintenance_work_mem: `LEAST({DBInstanceClassMemory/${16 * 1024}},${2 * 1024 * 1024})`, // kB, capped at 2 GB
  };
}
