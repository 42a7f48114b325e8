// IPv4 CIDR arithmetic for the exposure policies.

export const ANY_IPV4 = "0.0.0.0/0";
export const ANY_IPV6 = "::/0";

interface Cidr {
  base: number;
  bits: number;
}

function parse(cidr: string): Cidr | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  return { base: octets.reduce((acc, o) => acc * 256 + o, 0), bits };
}

/** The network prefix of an address as a number; a /0 prefix is 0 for every address. */
function prefix(address: number, bits: number): number {
  return bits === 0 ? 0 : Math.floor(address / 2 ** (32 - bits));
}

/** True when every address of `inner` lies in `outer`. Unparseable CIDRs are never contained. */
export function cidrContains(outer: string, inner: string): boolean {
  const o = parse(outer);
  const i = parse(inner);
  if (!o || !i || i.bits < o.bits) return false;
  return prefix(o.base, o.bits) === prefix(i.base, o.bits);
}
