import { Match } from 'aws-cdk-lib/assertions';
import { GPU_AMI } from '../lib/compute';
import { TAG_KEYS } from '../lib/contract';
import { evaluatePolicy, resolveIntrinsics } from './support/iam-policy';
import { RUN_CONTEXT, synth } from './support/synth';

const OSS_AMI =
  '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id';

describe('compute layer during a run', () => {
  const { template, stack, settings } = synth({
    ...RUN_CONTEXT,
    instanceTypes: 'g6.xlarge,g5.xlarge',
    maxRuntimeHours: '6',
    maxRunCostUsd: '25',
    rootVolumeGiB: '250',
  });
  const runId = settings.run?.runId as string;
  const launchTemplate = () =>
    Object.values(template.findResources('AWS::EC2::LaunchTemplate'))[0].Properties
      .LaunchTemplateData;
  const group = () =>
    Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup'))[0].Properties;
  const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(construct.node.defaultChild as never);
  const statementsOf = (roleId: string) => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleId }] },
    });
    return Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
  };
  const instanceRoleId = logicalId(stack.compute.instanceRole);
  const trainerRoleId = logicalId(stack.compute.trainerRole as never);
  const instancePolicy = () => statementsOf(instanceRoleId);
  const trainerPolicy = () => statementsOf(trainerRoleId);
  const outputsId = logicalId(stack.storage.outputsBucket);
  const dataId = logicalId(stack.storage.dataBucket);
  const actionsOf = (statements: { Action: string | string[] }[]) =>
    statements.flatMap((s) => [s.Action].flat());
  /** The trainer role's policy with concrete bucket ARNs, for the policy evaluator. */
  const trainerDocument = () =>
    resolveIntrinsics(
      { Statement: trainerPolicy() },
      {
        [`${outputsId}.Arn`]: 'arn:aws:s3:::outputs',
        [`${dataId}.Arn`]: 'arn:aws:s3:::data',
      },
    );

  test('the security group admits no inbound traffic', () => {
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    const groups = template.findResources('AWS::EC2::SecurityGroup');
    for (const sg of Object.values(groups))
      expect(sg.Properties.SecurityGroupIngress).toBeUndefined();
  });

  test('the launch template requires IMDSv2 with hop limit 1, so only the host reaches IMDS', () => {
    expect(launchTemplate().MetadataOptions).toEqual({
      HttpTokens: 'required',
      HttpPutResponseHopLimit: 1,
    });
  });

  test('the root volume is an encrypted gp3 volume of rootVolumeGiB', () => {
    expect(launchTemplate().BlockDeviceMappings).toEqual([
      {
        DeviceName: '/dev/sda1',
        Ebs: { VolumeSize: 250, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true },
      },
    ]);
  });

  test('shutdown from inside terminates the instance, with detailed monitoring', () => {
    expect(launchTemplate().InstanceInitiatedShutdownBehavior).toBe('terminate');
    expect(launchTemplate().Monitoring).toEqual({ Enabled: true });
  });

  test('the AMI is the Deep Learning OSS driver AMI resolved from its public SSM parameter', () => {
    const parameters = template.toJSON().Parameters;
    const ami = Object.values(parameters as Record<string, { Type: string; Default: string }>).find(
      (p) => p.Default === OSS_AMI,
    );
    expect(ami?.Type).toBe('AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>');
    expect(GPU_AMI.parameterName).toBe(OSS_AMI);
  });

  test('synth says which AMI the GPU types boot', () => {
    const infos = stack.compute.node.metadata
      .filter((m) => m.type === 'aws:cdk:info')
      .map((m) => String(m.data));
    expect(infos).toEqual([
      `GPU instances (g6.xlarge, g5.xlarge) boot the Deep Learning Base OSS Nvidia Driver GPU ` +
        `AMI (Ubuntu 22.04), resolved at deploy time from ${OSS_AMI}.`,
    ]);
  });

  test('the user-data names the run-settings parameter and the runtime archive', () => {
    const userData = JSON.stringify(launchTemplate().UserData);
    expect(userData).toContain('/tuning-lab/TrainingStack/run-settings');
    expect(userData).toContain('s3://');
    expect(userData).not.toMatch(/\{\{[A-Z_]+\}\}/);
  });

  test('the group runs one instance: min 0, max 1, desired 1', () => {
    expect(group()).toMatchObject({ MinSize: '0', MaxSize: '1', DesiredCapacity: '1' });
  });

  test('spot across the listed types, price-capacity-optimized', () => {
    expect(group().MixedInstancesPolicy.LaunchTemplate.Overrides).toEqual([
      { InstanceType: 'g6.xlarge' },
      { InstanceType: 'g5.xlarge' },
    ]);
    expect(group().MixedInstancesPolicy.InstancesDistribution).toEqual({
      OnDemandAllocationStrategy: 'prioritized',
      OnDemandBaseCapacity: 0,
      OnDemandPercentageAboveBaseCapacity: 0,
      SpotAllocationStrategy: 'price-capacity-optimized',
    });
  });

  test('capacity rebalance is off: no replacement starts while the old instance still trains', () => {
    expect(group().CapacityRebalance).toBe(false);
  });

  test('the group spans the public subnets of two AZs', () => {
    expect(group().VPCZoneIdentifier).toHaveLength(2);
  });

  test('the group propagates the safety tags to its instances', () => {
    expect(group().Tags).toEqual(
      expect.arrayContaining([
        { Key: TAG_KEYS.stack, Value: 'TrainingStack', PropagateAtLaunch: true },
        { Key: TAG_KEYS.runId, Value: runId, PropagateAtLaunch: true },
        { Key: TAG_KEYS.maxRuntimeHours, Value: '6', PropagateAtLaunch: true },
        { Key: TAG_KEYS.maxRunCostUsd, Value: '25', PropagateAtLaunch: true },
      ]),
    );
  });

  test('launch errors are reported to the alerts topic', () => {
    expect(group().NotificationConfigurations).toEqual([
      expect.objectContaining({
        NotificationTypes: expect.arrayContaining(['autoscaling:EC2_INSTANCE_LAUNCH_ERROR']),
        TopicARN: { Ref: stack.getLogicalId(stack.safety.topic.node.defaultChild as never) },
      }),
    ]);
  });

  test('the dedicated VPC has no NAT gateway and an S3 gateway endpoint', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.s3']] },
    });
  });

  test('the instance writes only under runs/<run-id>/ of the outputs bucket', () => {
    const writes = instancePolicy().filter((s) =>
      [s.Action].flat().some((a: string) => /^s3:(Put|Delete)/.test(a)),
    );
    expect(writes).toEqual([
      expect.objectContaining({
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [outputsId, 'Arn'] }, `/runs/${runId}/*`]] },
      }),
    ]);
  });

  test('the instance lists only its run prefix', () => {
    expect(instancePolicy()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Action: 's3:ListBucket',
          Resource: { 'Fn::GetAtt': [outputsId, 'Arn'] },
          Condition: { StringLike: { 's3:prefix': [`runs/${runId}/*`, `runs/${runId}`] } },
        }),
      ]),
    );
  });

  test('the instance has no managed policies, only Session Manager actions for SSM', () => {
    const role = Object.values(
      template.findResources('AWS::IAM::Role', {
        Properties: {
          AssumeRolePolicyDocument: {
            Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })],
          },
        },
      }),
    )[0];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const ssm = instancePolicy()
      .flatMap((s) => [s.Action].flat())
      .filter((a: string) => /^(ssm|ssmmessages|ec2messages):/.test(a));
    expect(ssm.sort()).toEqual(
      [
        'ssm:DescribeParameters',
        'ssm:GetParameter',
        'ssm:GetParameterHistory',
        'ssm:GetParameters',
        'ssm:UpdateInstanceInformation',
        'ssmmessages:CreateControlChannel',
        'ssmmessages:CreateDataChannel',
        'ssmmessages:OpenControlChannel',
        'ssmmessages:OpenDataChannel',
      ].sort(),
    );
  });

  test('the instance pulls the image, writes its logs, publishes alerts, reads its settings', () => {
    const actions = actionsOf(instancePolicy());
    expect(actions).toEqual(
      expect.arrayContaining([
        'ecr:BatchGetImage',
        'ecr:GetAuthorizationToken',
        'logs:PutLogEvents',
        'sns:Publish',
        'ssm:GetParameter',
        'ec2:DescribeSpotPriceHistory',
        'autoscaling:DescribeAutoScalingInstances',
      ]),
    );
    expect(actions).not.toContain('ecr:PutImage');
  });

  test('the instance does not read the data bucket (the trainer role does)', () => {
    expect(JSON.stringify(instancePolicy())).not.toContain(dataId);
  });

  test('the instance may describe the images of the repository (to pin the tag to a digest)', () => {
    const repositoryId = logicalId(stack.registry.repository);
    expect(instancePolicy()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Action: expect.arrayContaining(['ecr:DescribeImages', 'ecr:BatchGetImage']),
          Effect: 'Allow',
          Resource: { 'Fn::GetAtt': [repositoryId, 'Arn'] },
        }),
      ]),
    );
  });

  test.each([
    ['s3:PutObject', `outputs/runs/${runId}/ledger.json`, 'allow'],
    ['s3:PutObject', `outputs/runs/${runId}/lease.json`, 'allow'],
    ['s3:PutObject', `outputs/runs/${runId}/progress.json`, 'allow'],
    ['s3:PutObject', `outputs/runs/${runId}/messages/x-started.json`, 'allow'],
    ['s3:GetObject', `outputs/runs/${runId}/control/stop-request.json`, 'allow'],
    ['s3:DeleteObject', `outputs/runs/${runId}/control/stop-request.json`, 'implicit-deny'],
    ['s3:PutObject', `outputs/safety/meters/${runId}.json`, 'implicit-deny'],
    ['s3:PutObject', 'outputs/runs/another-run/ledger.json', 'implicit-deny'],
    ['s3:GetObject', 'data/datasets/sample/train.jsonl', 'implicit-deny'],
    ['s3:DeleteObject', `outputs/runs/${runId}/checkpoints/step-1/manifest.json`, 'implicit-deny'],
  ])('the instance role: %s on %s is %s', (action, path, decision) => {
    // Every other resource gets a placeholder ARN that no S3 request matches.
    const document = resolveIntrinsics(
      { Statement: instancePolicy() },
      { [`${outputsId}.Arn`]: 'arn:aws:s3:::outputs', [`${dataId}.Arn`]: 'arn:aws:s3:::data' },
      (name) => `arn:aws:placeholder:::${name}`,
    );
    expect(evaluatePolicy(document, { action, resource: `arn:aws:s3:::${path}` })).toBe(decision);
  });

  test('the instance may assume the trainer role and no other', () => {
    const assume = instancePolicy().filter((s) => actionsOf([s]).includes('sts:AssumeRole'));
    expect(assume).toEqual([
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [trainerRoleId, 'Arn'] },
      },
    ]);
  });

  test('the trainer role trusts only the instance role, for at most an hour', () => {
    const role = template.toJSON().Resources[trainerRoleId].Properties;
    expect(role.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { AWS: { 'Fn::GetAtt': [instanceRoleId, 'Arn'] } },
        },
      ],
    });
    expect(role.MaxSessionDuration).toBe(3600);
    expect(role.ManagedPolicyArns).toBeUndefined();
  });

  test("the trainer role is denied writing the ledger, the lease, the stop request, the host's logs", () => {
    const denies = trainerPolicy().filter((s) => s.Effect === 'Deny');
    const objectArn = (key: string) => ({
      'Fn::Join': ['', [{ 'Fn::GetAtt': [outputsId, 'Arn'] }, `/${key}`]],
    });
    expect(denies).toEqual([
      {
        Action: ['s3:DeleteObject', 's3:PutObject'],
        Effect: 'Deny',
        Resource: expect.arrayContaining([
          objectArn(`runs/${runId}/ledger.json`),
          objectArn(`runs/${runId}/lease.json`),
          objectArn(`runs/${runId}/progress.json`),
          objectArn(`runs/${runId}/metrics.json`),
          objectArn(`runs/${runId}/messages/*`),
          objectArn(`runs/${runId}/control/stop-request.json`),
          objectArn(`runs/${runId}/logs/i-*`),
        ]),
      },
    ]);
    expect(denies[0].Resource).toHaveLength(7);
  });

  test.each([
    ['s3:PutObject', `runs/${runId}/ledger.json`, 'explicit-deny'],
    ['s3:DeleteObject', `runs/${runId}/ledger.json`, 'explicit-deny'],
    ['s3:PutObject', `runs/${runId}/lease.json`, 'explicit-deny'],
    ['s3:DeleteObject', `runs/${runId}/lease.json`, 'explicit-deny'],
    ['s3:PutObject', `runs/${runId}/progress.json`, 'explicit-deny'],
    ['s3:PutObject', `runs/${runId}/metrics.json`, 'explicit-deny'],
    ['s3:PutObject', `runs/${runId}/messages/20261201T000000.000Z-x-started.json`, 'explicit-deny'],
    [
      's3:DeleteObject',
      `runs/${runId}/messages/20261201T000000.000Z-x-started.json`,
      'explicit-deny',
    ],
    ['s3:PutObject', `runs/${runId}/control/stop-request.json`, 'explicit-deny'],
    ['s3:DeleteObject', `runs/${runId}/control/stop-request.json`, 'explicit-deny'],
    ['s3:PutObject', `runs/${runId}/logs/i-0abc/supervisor.log`, 'explicit-deny'],
    ['s3:PutObject', `runs/${runId}/logs/events.out.tfevents.1.host`, 'allow'],
    ['s3:GetObject', `runs/${runId}/ledger.json`, 'allow'],
    ['s3:PutObject', `runs/${runId}/checkpoints/step-100/model.safetensors`, 'allow'],
    ['s3:PutObject', 'runs/another-run/checkpoints/x', 'implicit-deny'],
    ['s3:PutObject', 'safety/meters/run.json', 'implicit-deny'],
  ])('the trainer role: %s on outputs/%s is %s', (action, key, decision) => {
    expect(
      evaluatePolicy(trainerDocument(), { action, resource: `arn:aws:s3:::outputs/${key}` }),
    ).toBe(decision);
  });

  test('the trainer role reads any dataset of the data bucket and writes none', () => {
    const request = (action: string) => ({
      action,
      resource: 'arn:aws:s3:::data/datasets/sample/train.jsonl',
    });
    expect(evaluatePolicy(trainerDocument(), request('s3:GetObject'))).toBe('allow');
    expect(evaluatePolicy(trainerDocument(), request('s3:PutObject'))).toBe('implicit-deny');
  });

  test('the trainer role lists only its run prefix of the outputs bucket', () => {
    expect(trainerPolicy()).toEqual(
      expect.arrayContaining([
        {
          Action: 's3:ListBucket',
          Effect: 'Allow',
          Resource: { 'Fn::GetAtt': [outputsId, 'Arn'] },
          Condition: { StringLike: { 's3:prefix': [`runs/${runId}/*`, `runs/${runId}`] } },
        },
      ]),
    );
  });

  test('the trainer role has S3 actions only: no capacity, SSM, SNS, EC2 or STS', () => {
    const actions = actionsOf(trainerPolicy());
    expect(actions.length).toBeGreaterThan(0);
    for (const action of actions) expect(action).toMatch(/^s3:/);
  });

  test('the instance may set the capacity of its own group, or leave it, and no other', () => {
    const groupId = stack.getLogicalId(stack.compute.group.node.defaultChild as never);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [
          {
            Action: ['autoscaling:DetachInstances', 'autoscaling:SetDesiredCapacity'],
            Effect: 'Allow',
            Resource: {
              'Fn::Join': [
                '',
                Match.arrayWith([
                  Match.stringLikeRegexp(':autoScalingGroup:\\*:autoScalingGroupName/$'),
                  { Ref: groupId },
                ]),
              ],
            },
          },
        ],
      },
    });
  });

  test('the group waits for the role policy and the run settings', () => {
    const groupResource = Object.values(
      template.findResources('AWS::AutoScaling::AutoScalingGroup'),
    )[0];
    const policyId = stack.getLogicalId(
      stack.compute.instanceRole.node.findChild('DefaultPolicy').node.defaultChild as never,
    );
    expect(groupResource.DependsOn).toEqual(expect.arrayContaining([policyId]));
    expect(groupResource.DependsOn.some((d: string) => d.startsWith('RunSettings'))).toBe(true);
  });
});

describe('compute layer without a run', () => {
  const { template, stack } = synth({ useSpot: 'false' });
  const group = () =>
    Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup'))[0].Properties;

  test('no GPU capacity: desired 0', () => {
    expect(group()).toMatchObject({ MinSize: '0', MaxSize: '1', DesiredCapacity: '0' });
  });

  test('useSpot=false runs on-demand only', () => {
    expect(
      group().MixedInstancesPolicy.InstancesDistribution.OnDemandPercentageAboveBaseCapacity,
    ).toBe(100);
    expect(group().CapacityRebalance).toBe(false);
  });

  test('there is no trainer role and the instance may assume no role', () => {
    expect(stack.compute.trainerRole).toBeUndefined();
    const assumable = template.findResources('AWS::IAM::Role', {
      Properties: {
        AssumeRolePolicyDocument: {
          Statement: [Match.objectLike({ Principal: { AWS: Match.anyValue() } })],
        },
      },
    });
    expect(Object.keys(assumable)).toEqual([]);
    const instancePolicies = template.findResources('AWS::IAM::Policy', {
      Properties: {
        Roles: [{ Ref: stack.getLogicalId(stack.compute.instanceRole.node.defaultChild as never) }],
      },
    });
    const actions = Object.values(instancePolicies).flatMap((p) =>
      p.Properties.PolicyDocument.Statement.flatMap((s: { Action: string | string[] }) =>
        [s.Action].flat(),
      ),
    );
    expect(actions).not.toContain('sts:AssumeRole');
  });

  test('the instance role gets no outputs-bucket write', () => {
    const roleId = stack.getLogicalId(stack.compute.instanceRole.node.defaultChild as never);
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleId }] },
    });
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement,
    );
    expect(statements.length).toBeGreaterThan(0);
    expect(statements.flatMap((s) => [s.Action].flat())).not.toContain('s3:PutObject');
  });
});

describe('compute layer on-demand in an existing network', () => {
  const { template, report } = synth({
    instanceTypes: 'g4dn.xlarge',
    useSpot: 'false',
    vpcId: 'vpc-0123456789abcdef0',
    subnetIds: 'subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2',
  });

  test('g4dn boots the same OSS driver AMI from /dev/sda1', () => {
    const defaults = Object.values(
      template.toJSON().Parameters as Record<string, { Default: string }>,
    ).map((p) => p.Default);
    expect(defaults).toContain(OSS_AMI);
    const launchTemplate = Object.values(template.findResources('AWS::EC2::LaunchTemplate'))[0]
      .Properties.LaunchTemplateData;
    expect(launchTemplate.BlockDeviceMappings[0].DeviceName).toBe('/dev/sda1');
  });

  test('an existing network synthesizes without findings or warnings about it', () => {
    expect(report).not.toMatch(/ERROR|noSubnetRouteTableId/);
  });

  test('no VPC is created and the group uses the given subnets', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    const group = Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup'))[0]
      .Properties;
    expect(group.VPCZoneIdentifier).toEqual([
      'subnet-0aaaaaaaaaaaaaaa1',
      'subnet-0bbbbbbbbbbbbbbb2',
    ]);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: 'vpc-0123456789abcdef0' });
  });

  test('instances get no public address (the network routes them)', () => {
    const launchTemplate = Object.values(template.findResources('AWS::EC2::LaunchTemplate'))[0]
      .Properties.LaunchTemplateData;
    expect(launchTemplate.NetworkInterfaces).toEqual([
      expect.objectContaining({ DeviceIndex: 0, AssociatePublicIpAddress: false }),
    ]);
  });
});
