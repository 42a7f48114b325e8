import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

/**
 * Where a request's CPU goes on the bench machine: the app (the server child), the load generator (this process),
 * Postgres and Redis. They share the machine's cores, so once it is busy a route's req/s follows the whole machine's
 * CPU per request, not the app's alone. Postgres and Redis are read from Linux's /proc (elsewhere they are left out).
 */
export interface CpuPerRequest {
  app: number;
  loadGenerator: number;
  postgres?: number;
  redis?: number;
  /** The four together, when Postgres and Redis could be read. */
  machine?: number;
}

type CpuSample = Omit<CpuPerRequest, "machine">;

/** /proc/<pid>/stat counts in clock ticks (USER_HZ, sysconf(_SC_CLK_TCK)): read once, only where /proc exists. */
let ticksPerSecond: number | undefined;

interface ProcStat {
  ppid: number;
  /** Its own user and system time and that of its reaped children, in ticks (stat fields 14-17, proc(5)). */
  ticks: number;
}

function readProcStats(): Map<number, ProcStat> | undefined {
  if (!existsSync("/proc/self/stat")) return undefined;
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  const stats = new Map<number, ProcStat>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let line: string;
    try {
      line = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited since the directory was read
    }
    // Field 2, the command, is in parentheses and may hold spaces: the fields after it start at field 3 (state).
    const fields = line.slice(line.lastIndexOf(")") + 2).split(" ");
    const at = (field: number) => Number(fields[field - 3]);
    stats.set(Number(entry), { ppid: at(4), ticks: at(14) + at(15) + at(16) + at(17) });
  }
  return stats;
}

/**
 * CPU microseconds of `root` and its descendants: those running and those that exited (a backend Postgres reaped is
 * counted in the postmaster's children's time).
 */
function treeMicros(stats: Map<number, ProcStat>, root: number | undefined): number | undefined {
  if (root === undefined || !stats.has(root)) return undefined;
  let ticks = 0;
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    ticks += stats.get(pid)!.ticks;
    for (const [child, stat] of stats) if (stat.ppid === pid) pending.push(child);
  }
  return (ticks / ticksPerSecond!) * 1e6;
}

/**
 * Samples the four parties' CPU time; `perRequest` turns two samples into microseconds per request. The app's is
 * asked of it (a function), or read from /proc with the others by its pid (NaN where /proc cannot be read).
 */
export function machineCpu(
  app: (() => Promise<number>) | { pid(): number | undefined },
  pids: { postgres(): number | undefined; redis(): number | undefined },
) {
  const sample = async (): Promise<CpuSample> => {
    const asked = typeof app === "function" ? await app() : undefined;
    const { user, system } = process.cpuUsage();
    const stats = readProcStats();
    const read = (pid: number | undefined) => stats && treeMicros(stats, pid);
    return {
      app: typeof app === "function" ? asked! : (read(app.pid()) ?? Number.NaN),
      loadGenerator: user + system,
      postgres: read(pids.postgres()),
      redis: read(pids.redis()),
    };
  };
  const perRequest = (before: CpuSample, after: CpuSample, requests: number): CpuPerRequest => {
    const per = (key: keyof CpuSample) => {
      const [a, b] = [before[key], after[key]];
      return a === undefined || b === undefined ? undefined : (b - a) / requests;
    };
    const cpu: CpuPerRequest = {
      app: per("app")!,
      loadGenerator: per("loadGenerator")!,
      postgres: per("postgres"),
      redis: per("redis"),
    };
    if (cpu.postgres !== undefined && cpu.redis !== undefined) {
      cpu.machine = cpu.app + cpu.loadGenerator + cpu.postgres + cpu.redis;
    }
    return cpu;
  };
  /** Runs `work` and returns what it returns, with each party's CPU per request over `requests(result)`. */
  const measure = async <T>(work: () => Promise<T>, requests: (result: T) => number) => {
    const before = await sample();
    const result = await work();
    return { result, cpu: perRequest(before, await sample(), requests(result)) };
  };
  return { measure };
}

export type MachineCpu = ReturnType<typeof machineCpu>;
