import { Match } from 'aws-cdk-lib/assertions';
import { TAG_KEYS } from '../lib/contract';
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
  const instancePolicy = () => {
    const roleId = stack.getLogicalId(stack.compute.instanceRole.node.defaultChild as never);
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleId }] },
    });
    return Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
  };
  const outputsId = stack.getLogicalId(stack.storage.outputsBucket.node.defaultChild as never);

  test('the security group admits no inbound traffic', () => {
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    const groups = template.findResources('AWS::EC2::SecurityGroup');
    for (const sg of Object.values(groups))
      expect(sg.Properties.SecurityGroupIngress).toBeUndefined();
  });

  test('the launch template requires IMDSv2 with hop limit 2', () => {
    expect(launchTemplate().MetadataOptions).toEqual({
      HttpTokens: 'required',
      HttpPutResponseHopLimit: 2,
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

  test('spot across the listed types in order, capacity-optimized, with capacity rebalance', () => {
    expect(group().MixedInstancesPolicy.LaunchTemplate.Overrides).toEqual([
      { InstanceType: 'g6.xlarge' },
      { InstanceType: 'g5.xlarge' },
    ]);
    expect(group().MixedInstancesPolicy.InstancesDistribution).toEqual({
      OnDemandAllocationStrategy: 'prioritized',
      OnDemandBaseCapacity: 0,
      OnDemandPercentageAboveBaseCapacity: 0,
      SpotAllocationStrategy: 'capacity-optimized-prioritized',
    });
    expect(group().CapacityRebalance).toBe(true);
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

  test('the instance reads the data bucket, pulls the image, writes its logs, publishes alerts', () => {
    const actions = instancePolicy().flatMap((s) => [s.Action].flat());
    expect(actions).toEqual(
      expect.arrayContaining([
        's3:GetObject*',
        'ecr:BatchGetImage',
        'ecr:GetAuthorizationToken',
        'logs:PutLogEvents',
        'sns:Publish',
        'ssm:GetParameter',
        'ec2:DescribeSpotPriceHistory',
      ]),
    );
    expect(actions).not.toContain('ecr:PutImage');
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

describe('compute layer for p3 in an existing network', () => {
  const { template, report, stack } = synth({
    instanceTypes: 'p3.2xlarge',
    vpcId: 'vpc-0123456789abcdef0',
    subnetIds: 'subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2',
  });

  test('p3 boots the proprietary-driver Amazon Linux 2 DLAMI and synth says so', () => {
    const defaults = Object.values(
      template.toJSON().Parameters as Record<string, { Default: string }>,
    ).map((p) => p.Default);
    expect(defaults).toContain(
      '/aws/service/deeplearning/ami/x86_64/base-proprietary-nvidia-driver-amazon-linux-2/latest/ami-id',
    );
    const launchTemplate = Object.values(template.findResources('AWS::EC2::LaunchTemplate'))[0]
      .Properties.LaunchTemplateData;
    expect(launchTemplate.BlockDeviceMappings[0].DeviceName).toBe('/dev/xvda');
    const infos = stack.compute.node.metadata
      .filter((m) => m.type === 'aws:cdk:info')
      .map((m) => String(m.data));
    expect(infos).toEqual([
      expect.stringContaining(
        'boot the Deep Learning Base Proprietary Nvidia Driver AMI (Amazon Linux 2), for P3',
      ),
    ]);
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
});
