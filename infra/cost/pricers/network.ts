// Networking that bills by the hour: NAT gateways (plus the NAT GB of the usage file, split evenly), public
// IPv4 addresses, interface endpoints, and load balancers; and by the month, the AWS WAF web ACL in front of one.
// The ALB of an Ingress is created by the AWS Load Balancer Controller, not by Pulumi, so it is priced from the
// Ingress (one ALB per ingress group).
import type { PlannedResource } from "../../plan/types.ts";
import { at, atKeys, optionalString } from "../inputs.ts";
import { free, steady, type Pricing, type PricingContext } from "../model.ts";

export function natGateway(nat: PlannedResource, ctx: PricingContext): Pricing {
  const gateways = ctx.ofType(nat.type).length;
  const gb = ctx.usage.natGbPerMonth / gateways;
  const hours = ctx.prices.usd("vpc:nat-gateway-hour") * ctx.hoursPerMonth;
  const data = gb * ctx.prices.usd("vpc:nat-gateway-gb");
  return steady(
    hours + data,
    `730 h + ${round(gb)} GB processed (${ctx.usage.natGbPerMonth} GB/month over ${gateways} gateway(s))`,
  );
}

export function publicIpv4(_eip: PlannedResource, ctx: PricingContext): Pricing {
  return steady(ctx.prices.usd("vpc:public-ipv4-hour") * ctx.hoursPerMonth, "public IPv4 address, 730 h");
}

export function vpcEndpoint(ep: PlannedResource, ctx: PricingContext): Pricing {
  const kind = optionalString(ep.inputs, "vpcEndpointType") ?? "Gateway";
  if (kind === "Gateway") return free("gateway endpoints (S3, DynamoDB) have no charge");
  const subnets = Array.isArray(ep.inputs.subnetIds) ? ep.inputs.subnetIds.length : 1;
  return steady(
    subnets * ctx.prices.usd("vpc:interface-endpoint-hour") * ctx.hoursPerMonth,
    `${kind} endpoint in ${subnets} AZ(s), data processing not counted`,
  );
}

/** AZs a load balancer spans: the plan's public subnets tagged for ELB, else 2 (the minimum for an ALB). */
function loadBalancerAzs(ctx: PricingContext): number {
  const publicSubnets = ctx
    .ofType("aws:ec2/subnet:Subnet")
    .filter((s) => atKeys(s.inputs, ["tags", "kubernetes.io/role/elb"]) !== undefined);
  return Math.max(2, publicSubnets.length);
}

function loadBalancer(kind: "alb" | "nlb" | "clb", internetFacing: boolean, ctx: PricingContext, what: string): Pricing {
  const hours = ctx.hoursPerMonth;
  let monthly = ctx.prices.usd(`elb:${kind}-hour`) * hours;
  const notes = [`${kind.toUpperCase()} ${what}`];
  if (kind !== "clb") {
    const lcu = kind === "alb" ? ctx.usage.albLcuPerHour : ctx.usage.nlbLcuPerHour;
    monthly += lcu * ctx.prices.usd(`elb:${kind}-lcu-hour`) * hours;
    notes.push(`${lcu} LCU/h`);
  }
  if (internetFacing) {
    const azs = loadBalancerAzs(ctx);
    monthly += azs * ctx.prices.usd("vpc:public-ipv4-hour") * hours;
    notes.push(`internet-facing: ${azs} public IPv4`);
  } else notes.push("internal");
  return steady(monthly, notes.join(", "));
}

const ALB_PREFIX = "alb.ingress.kubernetes.io/";

function annotations(r: PlannedResource): Record<string, unknown> {
  return (at(r.inputs, "metadata.annotations") as Record<string, unknown> | undefined) ?? {};
}

function isAlbIngress(r: PlannedResource): boolean {
  const a = annotations(r);
  return (
    at(r.inputs, "spec.ingressClassName") === "alb" ||
    a["kubernetes.io/ingress.class"] === "alb" ||
    Object.keys(a).some((k) => k.startsWith(ALB_PREFIX))
  );
}

function ingressGroup(r: PlannedResource): string | undefined {
  const g = annotations(r)[`${ALB_PREFIX}group.name`];
  return typeof g === "string" ? g : undefined;
}

export function ingress(r: PlannedResource, ctx: PricingContext): Pricing {
  if (!isAlbIngress(r)) return free("not an ALB ingress: its load balancer, if any, is priced from its Service");
  const group = ingressGroup(r);
  if (group !== undefined) {
    const first = ctx.ofType(r.type).find((o) => isAlbIngress(o) && ingressGroup(o) === group);
    if (first && first !== r) return free(`shares the ALB of ingress group "${group}", priced on ${first.name}`);
  }
  const internetFacing = annotations(r)[`${ALB_PREFIX}scheme`] === "internet-facing"; // controller default: internal
  return loadBalancer(
    "alb",
    internetFacing,
    ctx,
    group ? `for ingress group "${group}"` : "created by the AWS Load Balancer Controller",
  );
}

export function kubernetesService(r: PlannedResource, ctx: PricingContext): Pricing {
  if (at(r.inputs, "spec.type") !== "LoadBalancer") return free("cluster-internal Service");
  const a = annotations(r);
  const lbType = a["service.beta.kubernetes.io/aws-load-balancer-type"];
  const nlb = lbType === "nlb" || lbType === "external" || lbType === "nlb-ip";
  const scheme = a["service.beta.kubernetes.io/aws-load-balancer-scheme"];
  // The in-tree controller makes internet-facing CLBs; the AWS Load Balancer Controller defaults to internal.
  const internetFacing =
    scheme === "internet-facing" || (!nlb && a["service.beta.kubernetes.io/aws-load-balancer-internal"] !== "true");
  return loadBalancer(nlb ? "nlb" : "clb", internetFacing, ctx, "for a Service of type LoadBalancer");
}

export function awsLoadBalancer(r: PlannedResource, ctx: PricingContext): Pricing {
  const type = optionalString(r.inputs, "loadBalancerType") ?? "application";
  const kind = type === "network" ? "nlb" : type === "application" ? "alb" : undefined;
  if (!kind) return loadBalancer("alb", false, ctx, `(${type} load balancer priced as an ALB)`);
  return loadBalancer(kind, r.inputs.internal !== true, ctx, "");
}

/** A regional AWS WAF web ACL: its month, one charge per rule, and every request reaching the ALB it guards. */
export function webAcl(acl: PlannedResource, ctx: PricingContext): Pricing {
  const rules = Array.isArray(acl.inputs.rules) ? acl.inputs.rules.length : 0;
  const millions = ctx.usage.apiRequestsPerMonth / 1e6;
  const monthly =
    ctx.prices.usd("waf:web-acl") + rules * ctx.prices.usd("waf:rule") + millions * ctx.prices.usd("waf:million-requests");
  return steady(monthly, `web ACL + ${rules} rule(s) + ${round(millions)} M requests/month inspected`);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
