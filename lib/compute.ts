import {
  Annotations,
  ArnFormat,
  type CfnElement,
  Duration,
  RemovalPolicy,
  Stack,
  Tags,
} from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, type IConstruct } from 'constructs';
import {
  leaseKey,
  ledgerKey,
  messagesPrefix,
  metricsKey,
  progressKey,
  runPrefix,
  runSettingsParameterName,
  stopRequestKey,
  TAG_KEYS,
} from './contract';
import { GPU_AMI, type AmiChoice } from './ami';
import { UserInputError } from './errors';
import { loadUserData, runtimeArchive } from './instance-runtime';
import {
  acknowledgeAlertsKeyUse,
  acknowledgeCheckov,
  acknowledgeFinding,
  acknowledgeGrantPolicy,
  nagArnPrefix,
} from './nag';

export { GPU_AMI, type AmiChoice } from './ami';

/** The run the GPU capacity is for, as the safety tags and the instance's S3 grant need it. */
export interface ComputeRun {
  readonly runId: string;
  readonly maxRuntimeHours: number;
  /** @default - no per-run cost cap */
  readonly maxRunCostUsd?: number;
}

/** An existing network to launch into instead of a dedicated VPC. */
export interface ExistingNetwork {
  readonly vpcId: string;
  /** Subnets with a route to the internet (or to S3, ECR, SSM, Logs and SNS endpoints). */
  readonly subnetIds: readonly string[];
}

export interface TrainingComputeProps {
  /** Datasets: the trainer may read all of it. */
  readonly dataBucket: s3.IBucket;
  /** Runs: the instance and the trainer may read and write `runs/<run-id>/` only. */
  readonly outputsBucket: s3.IBucket;
  /** The trainer image repository: the instance may pull. */
  readonly repository: ecr.IRepository;
  /** Where the instance reports (the supervisor publishes) and where launch errors go. */
  readonly alertsTopic: sns.ITopic;
  /** GPU instance types; on-demand launches the first that has capacity (capacity ladder). */
  readonly instanceTypes: readonly string[];
  /**
   * Run on spot capacity (price-capacity-optimized across types and AZs), else on-demand.
   * @default true
   */
  readonly useSpot?: boolean;
  /**
   * Desired GPU capacity 1 (a run) instead of 0.
   * @default false
   */
  readonly createInstance?: boolean;
  /**
   * The configured run; without it the instance role gets no outputs-bucket access and there
   * is no trainer role.
   * @default - no run
   */
  readonly run?: ComputeRun;
  /**
   * Size of the encrypted gp3 root volume.
   * @default 200
   */
  readonly rootVolumeGiB?: number;
  /**
   * Launch into this network.
   * @default - a dedicated VPC: public subnets in 2 AZs, no NAT gateway, an S3 gateway endpoint
   */
  readonly network?: ExistingNetwork;
  /**
   * Keep the instance log group when the stack is deleted.
   * @default true
   */
  readonly retainLogs?: boolean;
}

/**
 * The compute layer: network, instance role, trainer role, launch template and the GPU capacity.
 *
 * The capacity is an Auto Scaling group (min 0, max 1) with a mixed-instances policy rather than
 * a bare instance: it gives a capacity ladder across instance types and AZs, and when a spot
 * instance is reclaimed the group launches a replacement that resumes the run from its last
 * checkpoint. Capacity 0 means no instance and no GPU cost.
 *
 * Two roles, because the trainer container runs untrusted code (remote model code, a bad
 * image): the instance role belongs to the host supervisor (capacity, ledger, lease, messages),
 * and IMDS answers only the host (hop limit 1). The trainer gets short-lived credentials of the
 * trainer role, which the supervisor assumes for it: read the datasets, write its own run's
 * checkpoints and model, and nothing that the safety controls read or act with.
 */
export class TrainingCompute extends Construct {
  public readonly vpc: ec2.IVpc;
  public readonly securityGroup: ec2.ISecurityGroup;
  public readonly instanceRole: iam.Role;
  /** The trainer's S3 role (present with a run); the instance role may assume it. */
  public readonly trainerRole?: iam.Role;
  public readonly launchTemplate: ec2.LaunchTemplate;
  public readonly group: autoscaling.AutoScalingGroup;
  /** The trainer's log group (the container's output, through docker's awslogs driver). */
  public readonly logGroup: logs.LogGroup;
  public readonly ami: AmiChoice;

  constructor(scope: Construct, id: string, props: TrainingComputeProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const useSpot = props.useSpot ?? true;
    const createInstance = props.createInstance ?? false;
    const rootVolumeGiB = props.rootVolumeGiB ?? 200;
    const retainLogs = props.retainLogs ?? true;
    if (props.instanceTypes.length === 0) {
      throw new UserInputError('instanceTypes must list at least one GPU type, e.g. g5.xlarge.');
    }
    if (createInstance && props.run === undefined) {
      throw new UserInputError('createInstance=true needs a run (runConfig).');
    }

    const { vpc, subnets, dedicated } = this.network(props.network);
    this.vpc = vpc;

    this.securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc,
      description: 'GPU training instance: no inbound access (SSM Session Manager only)',
      allowAllOutbound: true,
    });

    this.logGroup = new logs.LogGroup(this, 'InstanceLogGroup', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: retainLogs ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    acknowledgeFinding(
      this.logGroup,
      'NIST.800.53.R5::NIST.800.53.R5-CloudWatchLogGroupEncrypted',
      'Training logs hold no secrets; CloudWatch Logs encrypts them at rest with its own keys, ' +
        'and a customer key would add cost and key-policy coupling.',
      'CKV_AWS_158',
    );

    this.instanceRole = new iam.Role(this, 'InstanceRole', {
      description:
        'GPU instance host: run settings, its run (ledger, lease, logs), image pull, capacity, SSM',
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
    });
    // Session Manager only (the minimal instance policy AWS documents for it), rather than the
    // broader AmazonSSMManagedInstanceCore managed policy (Run Command, inventory, patching).
    this.instanceRole.addToPolicy(
      new iam.PolicyStatement({
        actions: [
          'ssm:UpdateInstanceInformation',
          'ssmmessages:CreateControlChannel',
          'ssmmessages:CreateDataChannel',
          'ssmmessages:OpenControlChannel',
          'ssmmessages:OpenDataChannel',
        ],
        resources: ['*'],
      }),
    );
    if (props.run) {
      // The host reads and writes the ledger, the lease and its logs; it deletes nothing.
      this.grantRunAccess(this.instanceRole, props.outputsBucket, props.run.runId, [
        's3:GetObject',
        's3:PutObject',
        's3:AbortMultipartUpload',
      ]);
      this.trainerRole = this.newTrainerRole(
        props.dataBucket,
        props.outputsBucket,
        props.run.runId,
      );
    }
    props.repository.grantPull(this.instanceRole);
    // The first start of a run pins the image tag to its digest (every attempt pulls that).
    props.repository.grant(this.instanceRole, 'ecr:DescribeImages');
    this.logGroup.grantWrite(this.instanceRole);
    props.alertsTopic.grantPublish(this.instanceRole);
    // The supervisor finds its own group by its instance id and prices a spot instance from
    // the spot price history; neither call has a resource scope.
    this.instanceRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['autoscaling:DescribeAutoScalingInstances', 'ec2:DescribeSpotPriceHistory'],
        resources: ['*'],
      }),
    );

    const archive = runtimeArchive(this, 'RuntimeArchive');
    // The archive object only, not the whole CDK assets bucket (Asset.grantRead grants bucket/*).
    this.instanceRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [archive.bucket.arnForObjects(archive.s3ObjectKey)],
      }),
    );
    const userData = ec2.UserData.custom(
      loadUserData({
        runSettingsParameter: runSettingsParameterName(stack.stackName),
        region: stack.region,
        runtimeArchiveUri: archive.s3ObjectUrl,
        stackName: stack.stackName,
      }),
    );

    this.ami = GPU_AMI;
    Annotations.of(this).addInfo(
      `GPU instances (${props.instanceTypes.join(', ')}) boot the ${this.ami.description}, ` +
        `resolved at deploy time from ${this.ami.parameterName}.`,
    );

    this.launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      machineImage: ec2.MachineImage.fromSsmParameter(this.ami.parameterName),
      userData,
      role: this.instanceRole,
      securityGroup: this.securityGroup,
      // A public address instead of a NAT gateway (no inbound rule lets anything in).
      associatePublicIpAddress: props.network === undefined,
      requireImdsv2: true,
      // The host only: a token's one hop does not reach a container behind the docker bridge,
      // so the trainer never holds the instance role (it gets the trainer role's credentials).
      httpPutResponseHopLimit: 1,
      detailedMonitoring: true,
      // `shutdown -h now` from the supervisor ends the instance and its billing.
      instanceInitiatedShutdownBehavior: ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
      blockDevices: [
        {
          deviceName: this.ami.rootDeviceName,
          volume: ec2.BlockDeviceVolume.ebs(rootVolumeGiB, {
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            encrypted: true,
            deleteOnTermination: true,
          }),
        },
      ],
    });

    if (props.network === undefined) {
      acknowledgeCheckov(
        this.launchTemplate,
        'CKV_AWS_88',
        'A public address instead of a NAT gateway (~33 USD/month) in the dedicated VPC; the ' +
          'security group admits no inbound traffic.',
      );
    }

    this.group = new autoscaling.AutoScalingGroup(this, 'GpuGroup', {
      vpc,
      vpcSubnets: { subnets },
      minCapacity: 0,
      maxCapacity: 1,
      desiredCapacity: createInstance ? 1 : 0,
      mixedInstancesPolicy: {
        launchTemplate: this.launchTemplate,
        launchTemplateOverrides: props.instanceTypes.map((t) => ({
          instanceType: new ec2.InstanceType(t),
        })),
        instancesDistribution: {
          onDemandBaseCapacity: 0,
          onDemandPercentageAboveBaseCapacity: useSpot ? 0 : 100,
          onDemandAllocationStrategy: autoscaling.OnDemandAllocationStrategy.PRIORITIZED,
          // AWS's recommended spot strategy: the lowest-priced pools among those least likely
          // to be interrupted, across every listed type and AZ (the list's order is not used).
          spotAllocationStrategy: autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
        },
      },
      // Off: a rebalance would start the replacement while the old instance still trains the
      // run. The spot notice path alone replaces an instance: the old one checkpoints and
      // releases the run's lease, and the replacement takes it (docs/architecture.md).
      capacityRebalance: false,
      notifications: [
        // Launch errors are how a user learns of a 0 vCPU quota or no spot capacity.
        { topic: props.alertsTopic, scalingEvents: autoscaling.ScalingEvents.ALL },
      ],
      groupMetrics: [autoscaling.GroupMetrics.all()],
    });
    Annotations.of(this.group).acknowledgeWarning(
      '@aws-cdk/aws-autoscaling:desiredCapacitySet',
      'Intended: every deploy sets the GPU capacity from createInstance (1 for a run, 0 for none).',
    );

    const tags: Record<string, string> = { [TAG_KEYS.stack]: stack.stackName };
    if (props.run) {
      tags[TAG_KEYS.runId] = props.run.runId;
      tags[TAG_KEYS.maxRuntimeHours] = String(props.run.maxRuntimeHours);
      if (props.run.maxRunCostUsd !== undefined) {
        tags[TAG_KEYS.maxRunCostUsd] = String(props.run.maxRunCostUsd);
      }
    }
    for (const [key, value] of Object.entries(tags)) {
      Tags.of(this.group).add(key, value, {
        applyToLaunchedInstances: true,
        includeResourceTypes: ['AWS::AutoScaling::AutoScalingGroup'],
      });
    }
    // The launch template tags what it makes (instance and root volume) with the stack too, so
    // a volume left unattached is still found as this stack's (`tuning-lab sweep`).
    Tags.of(this.launchTemplate).add(TAG_KEYS.stack, stack.stackName, {
      includeResourceTypes: ['AWS::EC2::LaunchTemplate'],
    });

    // The instance may set the capacity of its own group and of no other, and leave it for a
    // debug hold (DetachInstances, decrementing the capacity, so the group neither terminates
    // nor replaces it). A separate policy, because it names the group and the group's launch
    // template names the role.
    const capacityPolicy = new iam.Policy(this, 'OwnGroupCapacityPolicy', {
      roles: [this.instanceRole],
      statements: [
        new iam.PolicyStatement({
          actions: ['autoscaling:DetachInstances', 'autoscaling:SetDesiredCapacity'],
          resources: [
            stack.formatArn({
              service: 'autoscaling',
              resource: 'autoScalingGroup',
              resourceName: `*:autoScalingGroupName/${this.group.autoScalingGroupName}`,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ],
        }),
      ],
    });
    this.acknowledgeFindings(capacityPolicy, dedicated);
  }

  private acknowledgeFindings(capacityPolicy: iam.Policy, dedicatedVpc?: ec2.Vpc): void {
    const policy = this.instanceRole.node.findChild('DefaultPolicy');
    acknowledgeFinding(
      this.group,
      'AwsSolutions::AwsSolutions-EC26',
      'The root volume is encrypted in the launch template, which this rule does not follow ' +
        'through a mixed-instances policy (test/compute.test.ts asserts it).',
    );
    acknowledgeFinding(
      this.group,
      'NIST.800.53.R5::NIST.800.53.R5-EC2IMDSv2Enabled',
      'IMDSv2 is required in the launch template, which this rule does not follow through a ' +
        'mixed-instances policy (test/compute.test.ts asserts it).',
    );
    acknowledgeFinding(
      policy,
      'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      'Session Manager channels, ecr:GetAuthorizationToken, DescribeAutoScalingInstances and ' +
        'DescribeSpotPriceHistory have no resource-level permissions; the rest names its resource.',
      'CKV_AWS_111',
    );
    acknowledgeAlertsKeyUse(policy);
    acknowledgeGrantPolicy(policy);
    acknowledgeFinding(
      capacityPolicy,
      'NIST.800.53.R5::NIST.800.53.R5-IAMNoInlinePolicy',
      'A separate policy only because it names the group; it belongs to the instance role alone.',
    );
    acknowledgeFinding(
      capacityPolicy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${nagArnPrefix(Stack.of(this), 'autoscaling')}:autoScalingGroup:*:autoScalingGroupName/<${this.logicalIdOf(this.group)}>]`,
      "The group's ARN holds a UUID known only after creation; the group name pins this one group.",
    );
    if (dedicatedVpc) {
      for (const subnet of dedicatedVpc.publicSubnets) {
        acknowledgeFinding(
          subnet.node.findChild('DefaultRoute'),
          'NIST.800.53.R5::NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW',
          'No NAT gateway (~33 USD/month): the instance reaches S3, ECR and SSM through the ' +
            'internet gateway while its security group admits no inbound traffic.',
        );
      }
      acknowledgeFinding(
        dedicatedVpc,
        'NIST.800.53.R5::NIST.800.53.R5-VPCDefaultSecurityGroupClosed',
        'Nothing uses the default security group; closing it needs a custom resource, which ' +
          'the emulated deploy test cannot run.',
      );
    }
  }

  private logicalIdOf(construct: IConstruct): string {
    return Stack.of(this).getLogicalId(construct.node.defaultChild as CfnElement);
  }

  /** `actions` on the objects of `runs/<run-id>/` of the outputs bucket; list only that prefix. */
  private grantRunAccess(
    role: iam.Role,
    outputsBucket: s3.IBucket,
    runId: string,
    actions: string[],
  ): void {
    const prefix = runPrefix(runId);
    acknowledgeFinding(
      role.node.findChild('DefaultPolicy'),
      `AwsSolutions::AwsSolutions-IAM5[Resource::<${this.logicalIdOf(outputsBucket)}.Arn>/${prefix}/*]`,
      'Checkpoints, the final model, the ledger and the lease are many objects under the one ' +
        'run prefix.',
    );
    role.addToPolicy(
      new iam.PolicyStatement({ actions, resources: [outputsBucket.arnForObjects(`${prefix}/*`)] }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [outputsBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${prefix}/*`, prefix] } },
      }),
    );
  }

  /**
   * The trainer's role: read the datasets, write its own run; never the ledger or the lease
   * (what the safety controls and the supervisor rely on). Only the instance role may assume it,
   * and a chained session lasts at most an hour, so the supervisor renews it (contract 3b).
   */
  private newTrainerRole(
    dataBucket: s3.IBucket,
    outputsBucket: s3.IBucket,
    runId: string,
  ): iam.Role {
    const role = new iam.Role(this, 'TrainerRole', {
      description: 'The trainer container: read datasets, write its run (not its ledger or lease)',
      assumedBy: new iam.ArnPrincipal(this.instanceRole.roleArn),
      maxSessionDuration: Duration.hours(1),
    });
    role.grantAssumeRole(this.instanceRole);
    dataBucket.grantRead(role);
    // What the supervisor reports of the run (progress, metrics, messages: contract sections
    // 11 and 12) is the host's word; the trainer may not forge or remove it.
    role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        actions: ['s3:PutObject', 's3:DeleteObject'],
        resources: [progressKey(runId), metricsKey(runId), `${messagesPrefix(runId)}*`].map((key) =>
          outputsBucket.arnForObjects(key),
        ),
      }),
    );
    // Deletes: checkpoints past save_total_limit.
    this.grantRunAccess(role, outputsBucket, runId, [
      's3:GetObject',
      's3:PutObject',
      's3:DeleteObject',
      's3:AbortMultipartUpload',
    ]);
    role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        actions: ['s3:PutObject', 's3:DeleteObject'],
        // ...nor the host's logs of each instance (logs/<instance-id>/; TensorBoard's files
        // are the trainer's own, logs/events.out.tfevents.*).
        // ...nor the operator's stop request, which only the operator may give or take back.
        resources: [
          ledgerKey(runId),
          leaseKey(runId),
          stopRequestKey(runId),
          `${runPrefix(runId)}/logs/i-*`,
        ].map((key) => outputsBucket.arnForObjects(key)),
      }),
    );
    const policy = role.node.findChild('DefaultPolicy');
    for (const action of ['s3:GetBucket*', 's3:GetObject*', 's3:List*']) {
      acknowledgeFinding(
        policy,
        `AwsSolutions::AwsSolutions-IAM5[Action::${action}]`,
        'bucket.grantRead on the data bucket: the trainer reads datasets and base models ' +
          'anywhere in it, nothing else.',
      );
    }
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::<${this.logicalIdOf(dataBucket)}.Arn>/*]`,
      'Datasets may live under any key of the data bucket, which holds nothing but datasets.',
    );
    acknowledgeGrantPolicy(policy);
    return role;
  }

  private network(existing?: ExistingNetwork): {
    vpc: ec2.IVpc;
    subnets: ec2.ISubnet[];
    dedicated?: ec2.Vpc;
  } {
    if (existing) {
      const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: existing.vpcId,
        availabilityZones: Stack.of(this).availabilityZones,
      });
      const subnets = existing.subnetIds.map((subnetId, i) => {
        const subnet = ec2.Subnet.fromSubnetId(this, `Subnet${i}`, subnetId);
        Annotations.of(subnet).acknowledgeWarning(
          '@aws-cdk/aws-ec2:noSubnetRouteTableId',
          'Only the subnet id is used (launch placement); nothing reads its route table.',
        );
        return subnet;
      });
      return { vpc, subnets };
    }
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr('10.42.0.0/16'),
      natGateways: 0,
      subnetConfiguration: [
        {
          name: 'public',
          subnetType: ec2.SubnetType.PUBLIC,
          cidrMask: 20,
          mapPublicIpOnLaunch: false,
        },
      ],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      restrictDefaultSecurityGroup: false,
    });
    const flowLogs = new logs.LogGroup(this, 'VpcFlowLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const flowLog = vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    acknowledgeFinding(
      flowLogs,
      'NIST.800.53.R5::NIST.800.53.R5-CloudWatchLogGroupEncrypted',
      'Rejected-traffic flow records hold no secrets; CloudWatch Logs encrypts them at rest with ' +
        'its own keys, and a customer key would add cost and key-policy coupling.',
      'CKV_AWS_158',
    );
    acknowledgeFinding(
      flowLog.node.findChild('IAMRole').node.findChild('DefaultPolicy'),
      'NIST.800.53.R5::NIST.800.53.R5-IAMNoInlinePolicy',
      "The flow log's CDK-generated role owns this one policy; it lives and dies with the role.",
    );
    return { vpc, subnets: vpc.publicSubnets, dedicated: vpc };
  }
}
