// Container registry: images are scanned when pushed and tags cannot be overwritten.
import * as aws from "@pulumi/aws";
import { validateResourceOfType, type ResourceValidationPolicy } from "@pulumi/policy";
import { isTrue } from "../lib/values.ts";

export const ecrScanOnPush: ResourceValidationPolicy = {
  name: "ecr-scan-on-push",
  description: "ECR repositories scan every image for vulnerabilities when it is pushed.",
  enforcementLevel: "mandatory",
  validateResource: validateResourceOfType(aws.ecr.Repository, (repo, _args, report) => {
    if (!isTrue(repo.imageScanningConfiguration?.scanOnPush))
      report("images are not scanned on push: set imageScanningConfiguration.scanOnPush: true.");
  }),
};

export const ecrImmutableTags: ResourceValidationPolicy = {
  name: "ecr-immutable-tags",
  description: "ECR repositories make tags immutable, so a deployed tag always names the same image.",
  enforcementLevel: "advisory",
  validateResource: validateResourceOfType(aws.ecr.Repository, (repo, _args, report) => {
    if (!String(repo.imageTagMutability ?? "MUTABLE").startsWith("IMMUTABLE"))
      report('tags can be overwritten: set imageTagMutability: "IMMUTABLE".');
  }),
};

export const registryPolicies = [ecrScanOnPush, ecrImmutableTags];
