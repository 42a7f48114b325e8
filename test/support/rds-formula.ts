// An RDS DB parameter value as RDS reads it at start (RDS User Guide, "Specifying DB parameters"): an integer, a
// formula in braces ({Variable}, {Variable*Integer}, {Variable*Integer/Integer}, {Variable/Integer}; each step's
// fraction dropped), or GREATEST, LEAST or SUM of such arguments. Anything else is refused here, as RDS refuses it.
const FORMULA = /^\{([A-Za-z]+)(?:\*(\d+))?(?:\/(\d+))?\}$/;
const FUNCTION = /^(GREATEST|LEAST|SUM)\(([^()]+)\)$/;

/** `value` evaluated for the formula variables given (DBInstanceClassMemory in bytes, DBInstanceVCPU). */
export function rdsParameterValue(value: string, variables: Record<string, number>): number {
  if (/^\d+$/.test(value)) return Number(value);
  const formula = FORMULA.exec(value);
  if (formula) {
    const [, name, times, over] = formula;
    const variable = variables[name!];
    if (variable === undefined) throw new Error(`${value}: no value given for ${name}`);
    return Math.floor((variable * Number(times ?? 1)) / Number(over ?? 1));
  }
  const call = FUNCTION.exec(value);
  if (call) {
    const args = call[2]!.split(",").map((a) => rdsParameterValue(a, variables));
    if (call[1] === "SUM") return args.reduce((a, b) => a + b, 0);
    return call[1] === "GREATEST" ? Math.max(...args) : Math.min(...args);
  }
  throw new Error(`not an RDS parameter value: ${value}`);
}

/** The formula variables of an instance of `gib` GiB (RDS's DBInstanceClassMemory is a little less) and `vcpus`. */
export const instanceOf = (gib: number, vcpus = 2) => ({ DBInstanceClassMemory: gib * 1024 ** 3, DBInstanceVCPU: vcpus });
