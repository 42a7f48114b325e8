// THE table: every resource type the estimator knows, either with its pricer or with the reason it is free.
// A type that is not here is reported as unpriced (never $0). A key ending in "*" covers a type-token prefix.
// Component resources of this project (custom: false, e.g. "agent-stack:platform:Cluster") are free by rule
// in estimate.ts: they only group resources. Remote components of other packages are not: their children are
// invisible offline, so they show up as unpriced.
import type { CatalogEntry } from "./model.ts";
import { ec2Instance, nodeGroup } from "./pricers/compute.ts";
import { cacheCluster, cacheReplicationGroup, rdsInstance } from "./pricers/data.ts";
import { awsLoadBalancer, ingress, kubernetesService, natGateway, publicIpv4, vpcEndpoint, webAcl } from "./pricers/network.ts";
import { dashboard, eksCluster, hostedZone, kmsKey, logGroup, metricAlarm, secret } from "./pricers/platform.ts";
import {
  backupVault,
  ebsVolume,
  ecrRepository,
  helmRelease,
  persistentVolumeClaim,
  s3Bucket,
  statefulSet,
} from "./pricers/storage.ts";

const FREE_NETWORK = "VPC plumbing has no charge";
const FREE_IAM = "IAM has no charge";
const FREE_CONFIG = "configuration only, no charge";
const FREE_ON_NODES = "runs on the node groups (priced there)";
const FREE_K8S = "Kubernetes API object, no AWS charge";
const FREE_LOCAL = "computed locally by the Pulumi engine, no cloud resource";

export const CATALOG: Record<string, CatalogEntry> = {
  // compute
  "aws:eks/nodeGroup:NodeGroup": { price: nodeGroup },
  "aws:ec2/instance:Instance": { price: ec2Instance },
  "aws:ec2/launchTemplate:LaunchTemplate": { free: "priced with the node group that uses it (root volume)" },
  "aws:autoscaling/schedule:Schedule": { free: "no charge; changes its node group's hours (priced there)" },
  "aws:scheduler/schedule:Schedule": {
    free: "EventBridge Scheduler: 14 M invocations/month free; stop/start changes the RDS hours (priced there)",
  },
  "aws:scheduler/scheduleGroup:ScheduleGroup": { free: FREE_CONFIG },

  // Kubernetes control plane
  "aws:eks/cluster:Cluster": { price: eksCluster },
  "aws:eks/addon:Addon": { free: "EKS add-ons have no charge; their pods run on the node groups" },
  "aws:eks/accessEntry:AccessEntry": { free: FREE_IAM },
  "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": { free: FREE_IAM },
  "aws:eks/podIdentityAssociation:PodIdentityAssociation": { free: FREE_IAM },

  // data stores
  "aws:rds/instance:Instance": { price: rdsInstance },
  "aws:rds/subnetGroup:SubnetGroup": { free: FREE_CONFIG },
  "aws:rds/parameterGroup:ParameterGroup": { free: FREE_CONFIG },
  "aws:rds/optionGroup:OptionGroup": { free: FREE_CONFIG },
  "aws:elasticache/replicationGroup:ReplicationGroup": { price: cacheReplicationGroup },
  "aws:elasticache/cluster:Cluster": { price: cacheCluster },
  "aws:elasticache/subnetGroup:SubnetGroup": { free: FREE_CONFIG },
  "aws:elasticache/parameterGroup:ParameterGroup": { free: FREE_CONFIG },
  "aws:elasticache/user:User": { free: FREE_CONFIG },
  "aws:elasticache/userGroup:UserGroup": { free: FREE_CONFIG },

  // network
  "aws:ec2/natGateway:NatGateway": { price: natGateway },
  "aws:ec2/eip:Eip": { price: publicIpv4 },
  "aws:ec2/vpcEndpoint:VpcEndpoint": { price: vpcEndpoint },
  "aws:lb/loadBalancer:LoadBalancer": { price: awsLoadBalancer },
  "aws:lb/listener:Listener": { free: "priced with its load balancer" },
  "aws:lb/targetGroup:TargetGroup": { free: "priced with its load balancer" },
  "aws:wafv2/webAcl:WebAcl": { price: webAcl },
  "aws:ec2/vpc:Vpc": { free: FREE_NETWORK },
  "aws:ec2/subnet:Subnet": { free: FREE_NETWORK },
  "aws:ec2/networkInterface:NetworkInterface": {
    free: "network interfaces have no charge; a public IPv4 on one is priced on its EIP",
  },
  "aws:ec2/internetGateway:InternetGateway": { free: FREE_NETWORK },
  "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway": { free: FREE_NETWORK },
  "aws:ec2/routeTable:RouteTable": { free: FREE_NETWORK },
  "aws:ec2/route:Route": { free: FREE_NETWORK },
  "aws:ec2/routeTableAssociation:RouteTableAssociation": { free: FREE_NETWORK },
  "aws:ec2/defaultRouteTable:DefaultRouteTable": { free: FREE_NETWORK },
  "aws:ec2/networkAcl:NetworkAcl": { free: FREE_NETWORK },
  "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl": { free: FREE_NETWORK },
  "aws:ec2/securityGroup:SecurityGroup": { free: FREE_NETWORK },
  "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": { free: FREE_NETWORK },
  "aws:ec2/securityGroupRule:SecurityGroupRule": { free: FREE_NETWORK },
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": { free: FREE_NETWORK },
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": { free: FREE_NETWORK },
  "aws:ec2/flowLog:FlowLog": { free: "no charge itself; its log group is priced" },
  "aws:route53/zone:Zone": { price: hostedZone },
  "aws:route53/record:Record": { free: "records have no monthly charge (queries not counted)" },
  "aws:acm/certificate:Certificate": { free: "public ACM certificates are free" },
  "aws:acm/certificateValidation:CertificateValidation": { free: FREE_CONFIG },

  // storage, backups, registry
  "aws:ebs/volume:Volume": { price: ebsVolume },
  "aws:s3/bucket:Bucket": { price: s3Bucket },
  "aws:s3/bucketV2:BucketV2": { price: s3Bucket },
  "aws:s3/bucketVersioning:BucketVersioning": { free: FREE_CONFIG },
  "aws:s3/bucketVersioningV2:BucketVersioningV2": { free: FREE_CONFIG },
  "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": { free: FREE_CONFIG },
  "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2": { free: FREE_CONFIG },
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": { free: FREE_CONFIG },
  "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": { free: FREE_CONFIG },
  "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": { free: FREE_CONFIG },
  "aws:s3/bucketOwnershipControls:BucketOwnershipControls": { free: FREE_CONFIG },
  "aws:s3/bucketPolicy:BucketPolicy": { free: FREE_CONFIG },
  "aws:backup/vault:Vault": { price: backupVault },
  "aws:backup/plan:Plan": { free: "backup plans have no charge; recovery points are priced on the vault" },
  "aws:backup/selection:Selection": { free: FREE_CONFIG },
  "aws:backup/vaultLockConfiguration:VaultLockConfiguration": { free: FREE_CONFIG },
  "aws:backup/vaultPolicy:VaultPolicy": { free: FREE_CONFIG },
  "aws:backup/vaultNotifications:VaultNotifications": { free: FREE_CONFIG },
  "aws:ecr/repository:Repository": { price: ecrRepository },
  "aws:ecr/lifecyclePolicy:LifecyclePolicy": { free: FREE_CONFIG },
  "aws:ecr/repositoryPolicy:RepositoryPolicy": { free: FREE_CONFIG },

  // security, secrets, observability, cost control
  "aws:kms/key:Key": { price: kmsKey },
  "aws:kms/alias:Alias": { free: FREE_CONFIG },
  "aws:secretsmanager/secret:Secret": { price: secret },
  "aws:secretsmanager/secretVersion:SecretVersion": { free: "priced with its secret" },
  "aws:ssm/parameter:Parameter": { free: "standard parameters are free" },
  "aws:iam/role:Role": { free: FREE_IAM },
  "aws:iam/rolePolicy:RolePolicy": { free: FREE_IAM },
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": { free: FREE_IAM },
  "aws:iam/policy:Policy": { free: FREE_IAM },
  "aws:iam/instanceProfile:InstanceProfile": { free: FREE_IAM },
  "aws:iam/openIdConnectProvider:OpenIdConnectProvider": { free: FREE_IAM },
  "aws:cloudwatch/logGroup:LogGroup": { price: logGroup },
  "aws:cloudwatch/metricAlarm:MetricAlarm": { price: metricAlarm },
  "aws:cloudwatch/dashboard:Dashboard": { price: dashboard },
  "aws:cloudwatch/eventRule:EventRule": { free: "EventBridge rules on AWS events are free" },
  "aws:cloudwatch/eventTarget:EventTarget": { free: FREE_CONFIG },
  "aws:sns/topic:Topic": { free: "SNS: first 1 M requests and 1,000 e-mails a month are free" },
  "aws:sns/topicSubscription:TopicSubscription": { free: FREE_CONFIG },
  "aws:sns/topicPolicy:TopicPolicy": { free: FREE_CONFIG },
  "aws:budgets/budget:Budget": { free: "AWS Budgets without actions are free" },
  "aws:costexplorer/costAllocationTag:CostAllocationTag": { free: "activating a cost allocation tag is free" },

  // Kubernetes objects: workloads run on the node groups; only volumes and load balancers cost
  "kubernetes:apps/v1:StatefulSet": { price: statefulSet },
  "kubernetes:core/v1:PersistentVolumeClaim": { price: persistentVolumeClaim },
  "kubernetes:networking.k8s.io/v1:Ingress": { price: ingress },
  "kubernetes:core/v1:Service": { price: kubernetesService },
  "kubernetes:helm.sh/v3:Release": { price: helmRelease },
  "kubernetes:apps/v1:Deployment": { free: FREE_ON_NODES },
  "kubernetes:apps/v1:DaemonSet": { free: FREE_ON_NODES },
  "kubernetes:batch/v1:Job": { free: FREE_ON_NODES },
  "kubernetes:batch/v1:CronJob": { free: FREE_ON_NODES },
  "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": { free: FREE_K8S },
  "kubernetes:policy/v1:PodDisruptionBudget": { free: FREE_K8S },
  "kubernetes:core/v1:Namespace": { free: FREE_K8S },
  "kubernetes:core/v1:Secret": { free: FREE_K8S },
  "kubernetes:core/v1:ConfigMap": { free: FREE_K8S },
  "kubernetes:core/v1:ServiceAccount": { free: FREE_K8S },
  "kubernetes:core/v1:LimitRange": { free: FREE_K8S },
  "kubernetes:core/v1:ResourceQuota": { free: FREE_K8S },
  "kubernetes:networking.k8s.io/v1:NetworkPolicy": { free: FREE_K8S },
  "kubernetes:networking.k8s.io/v1:IngressClass": { free: FREE_K8S },
  "kubernetes:rbac.authorization.k8s.io/v1:Role": { free: FREE_K8S },
  "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": { free: FREE_K8S },
  "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole": { free: FREE_K8S },
  "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": { free: FREE_K8S },
  "kubernetes:storage.k8s.io/v1:StorageClass": { free: "volumes of this class are priced on their claims" },
  "kubernetes:scheduling.k8s.io/v1:PriorityClass": { free: FREE_K8S },
  "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition": { free: FREE_K8S },
  "kubernetes:monitoring.coreos.com/v1:*": { free: "Prometheus Operator objects (rules, monitors), no AWS charge" },

  // providers and locally computed values
  "pulumi:providers:*": { free: "provider configuration" },
  "random:index/*": { free: FREE_LOCAL },
  "tls:index/*": { free: FREE_LOCAL },
  "docker:index/image:Image": { free: "built and pushed at deploy time; registry storage priced on the ECR repository" },
  "docker:index/registryImage:RegistryImage": { free: "registry storage priced on the ECR repository" },
  "docker-build:index:Image": { free: "built and pushed at deploy time; registry storage priced on the ECR repository" },
  "command:local:Command": { free: FREE_LOCAL },
};

/** The catalog entry for a type: the exact key, else the longest "prefix*" key that matches. */
export function catalogEntry(type: string): CatalogEntry | undefined {
  const exact = CATALOG[type];
  if (exact) return exact;
  let best: string | undefined;
  for (const key of Object.keys(CATALOG)) {
    if (key.endsWith("*") && type.startsWith(key.slice(0, -1)) && (!best || key.length > best.length)) best = key;
  }
  return best === undefined ? undefined : CATALOG[best];
}
