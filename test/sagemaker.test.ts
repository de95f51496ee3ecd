/**
 * The SageMaker backend in the synthesized template (lib/sagemaker.ts): no EC2 capacity, the
 * execution role's least privilege, the controller's policy scoped to this stack's jobs, its
 * two triggers, the job settings, and cdk-nag clean.
 */
import { Match } from 'aws-cdk-lib/assertions';
import {
  EC2_ONLY_OUTPUTS,
  jobSettingsParameterName,
  STACK_OUTPUTS,
  trainingJobStackPrefix,
} from '../lib/contract';
import { JOBS_ENV } from '../lambda/jobs/env';
import { evaluatePolicy, resolveIntrinsics } from './support/iam-policy';
import { nagApp, RUN_CONTEXT, synth, synthError } from './support/synth';

const ACCOUNT = '111111111111';
const SAGEMAKER_RUN = {
  ...RUN_CONTEXT,
  backend: 'sagemaker',
  instanceTypes: 'ml.g5.2xlarge',
  instanceCount: '2',
  maxRunCostUsd: '25',
  runId: 'run-sm-1',
};
const PREFIX = trainingJobStackPrefix('TrainingStack');

describe('backend=sagemaker with a run', () => {
  const { template, stack } = synth(SAGEMAKER_RUN);
  const outputsId = stack.getLogicalId(stack.storage.outputsBucket.node.defaultChild as never);
  const dataId = stack.getLogicalId(stack.storage.dataBucket.node.defaultChild as never);
  const jobs = stack.jobs!;
  const roleId = (role: unknown) =>
    stack.getLogicalId((role as { node: { defaultChild: never } }).node.defaultChild);
  const policyOf = (role: unknown) => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleId(role) }] },
    });
    return resolveIntrinsics(
      { Statement: Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement) },
      {
        [`${outputsId}.Arn`]: 'arn:aws:s3:::outputs',
        [`${dataId}.Arn`]: 'arn:aws:s3:::data',
        'AWS::AccountId': ACCOUNT,
        'AWS::Partition': 'aws',
        'AWS::Region': 'us-east-1',
      },
      (name) => `arn:aws:placeholder:::${name}`,
    );
  };

  test('creates no EC2 capacity: no group, launch template, VPC or instance role', () => {
    for (const type of [
      'AWS::AutoScaling::AutoScalingGroup',
      'AWS::EC2::LaunchTemplate',
      'AWS::EC2::VPC',
      'AWS::EC2::Instance',
    ]) {
      template.resourceCountIs(type, 0);
    }
    expect(() => stack.compute).toThrow('backend=sagemaker');
  });

  test("the execution role is for this stack's SageMaker training jobs alone", () => {
    const role = template.toJSON().Resources[roleId(jobs.executionRole)];
    const [statement] = role.Properties.AssumeRolePolicyDocument.Statement;
    expect(statement).toMatchObject({
      Principal: { Service: 'sagemaker.amazonaws.com' },
      Action: 'sts:AssumeRole',
    });
    const resolved = resolveIntrinsics(statement.Condition, {
      'AWS::AccountId': ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::Region': 'us-east-1',
    });
    expect(resolved).toEqual({
      ArnLike: {
        'aws:SourceArn': `arn:aws:sagemaker:us-east-1:${ACCOUNT}:training-job/${PREFIX}*`,
      },
    });
  });

  test('the job guard runs the controller when the run changes or the backend goes, before what a job uses is deleted', () => {
    const guards = template.findResources('Custom::TuningLabJobGuard');
    expect(Object.keys(guards)).toHaveLength(1);
    const [guard] = Object.values(guards);
    const fnId = stack.getLogicalId(jobs.function.node.defaultChild as never);
    expect(guard.Properties).toEqual({
      ServiceToken: { 'Fn::GetAtt': [fnId, 'Arn'] },
      RunId: 'run-sm-1',
      ServiceTimeout: '960',
    });
    const topicId = stack.getLogicalId(stack.safety.topic.node.defaultChild as never);
    // The function comes through the ServiceToken (its role and policy through the function).
    expect(guard.DependsOn).toEqual(
      expect.arrayContaining([roleId(jobs.executionRole), outputsId, dataId, topicId]),
    );
    // It waits up to the function's timeout, less a margin to answer.
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ TUNING_LAB_STACK_ID: { Ref: 'AWS::StackId' } }),
      },
      Timeout: 900,
    });
  });

  test("the job settings appear only once the run's role has its policy", () => {
    const policyId = stack.getLogicalId(
      jobs.executionRole!.node.findChild('DefaultPolicy').node.defaultChild as never,
    );
    const [parameter] = Object.values(
      template.findResources('AWS::SSM::Parameter', {
        Properties: { Name: '/tuning-lab/TrainingStack/job-settings' },
      }),
    );
    expect(parameter.DependsOn).toContain(policyId);
  });

  test('a new run id gets a new execution role (the old one outlives the guard) and the same guard', () => {
    const next = synth({ ...SAGEMAKER_RUN, runId: 'run-sm-2' });
    const ids = (t: typeof template, type: string) => Object.keys(t.findResources(type));
    const roles = (t: typeof template) =>
      ids(t, 'AWS::IAM::Role').filter((id) => id.includes('ExecutionRole'));
    expect(roles(template)).toHaveLength(1);
    expect(roles(next.template)).toHaveLength(1);
    expect(roles(next.template)).not.toEqual(roles(template));
    expect(ids(next.template, 'Custom::TuningLabJobGuard')).toEqual(
      ids(template, 'Custom::TuningLabJobGuard'),
    );
  });

  test.each([
    ['s3:GetObject', 'arn:aws:s3:::data/datasets/support/train.jsonl', 'allow'],
    ['s3:PutObject', 'arn:aws:s3:::data/datasets/x.jsonl', 'implicit-deny'],
    [
      's3:PutObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/checkpoints/step-10/manifest.json',
      'allow',
    ],
    [
      's3:DeleteObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/checkpoints/step-5/model.safetensors',
      'allow',
    ],
    [
      's3:PutObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/sagemaker/output/job/model.tar.gz',
      'allow',
    ],
    ['s3:PutObject', 'arn:aws:s3:::outputs/runs/other-run/final/manifest.json', 'implicit-deny'],
    ['s3:PutObject', 'arn:aws:s3:::outputs/runs/run-sm-1/ledger.json', 'explicit-deny'],
    [
      's3:PutObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/control/stop-request.json',
      'explicit-deny',
    ],
    [
      's3:PutObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/sagemaker/run-config.json',
      'explicit-deny',
    ],
    ['s3:PutObject', 'arn:aws:s3:::outputs/runs/run-sm-1/messages/x.json', 'explicit-deny'],
    ['s3:PutObject', 'arn:aws:s3:::outputs/safety/meters/run-sm-1.json', 'implicit-deny'],
    [
      'logs:PutLogEvents',
      `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:log-stream:${PREFIX}run-sm-1-a1/algo-1-1`,
      'allow',
    ],
    [
      'logs:PutLogEvents',
      `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:other:log-stream:x`,
      'implicit-deny',
    ],
  ])('execution role: %s on %s is %s', (action, resource, decision) => {
    expect(evaluatePolicy(policyOf(jobs.executionRole), { action, resource })).toBe(decision);
  });

  test("execution role: metrics only in SageMaker's namespaces", () => {
    const put = (namespace: string) =>
      evaluatePolicy(policyOf(jobs.executionRole), {
        action: 'cloudwatch:PutMetricData',
        resource: '*',
        context: { 'cloudwatch:namespace': namespace },
      });
    expect(put('/aws/sagemaker/TrainingJobs')).toBe('allow');
    expect(put('TuningLab')).toBe('implicit-deny');
  });

  test.each([
    [
      'sagemaker:CreateTrainingJob',
      `arn:aws:sagemaker:us-east-1:${ACCOUNT}:training-job/${PREFIX}run-sm-1-a1`,
      'allow',
    ],
    [
      'sagemaker:StopTrainingJob',
      `arn:aws:sagemaker:us-east-1:${ACCOUNT}:training-job/${PREFIX}run-sm-1-a2`,
      'allow',
    ],
    [
      'sagemaker:StopTrainingJob',
      `arn:aws:sagemaker:us-east-1:${ACCOUNT}:training-job/someone-elses-job`,
      'implicit-deny',
    ],
    [
      'sagemaker:DescribeTrainingJob',
      `arn:aws:sagemaker:us-east-1:${ACCOUNT}:training-job/tl-ffffffff-x-a1`,
      'implicit-deny',
    ],
    ['sagemaker:ListTrainingJobs', '*', 'allow'],
    ['sagemaker:CreateEndpoint', '*', 'implicit-deny'],
    ['s3:PutObject', 'arn:aws:s3:::outputs/runs/run-sm-1/ledger.json', 'allow'],
    ['s3:PutObject', 'arn:aws:s3:::outputs/runs/run-sm-1/sagemaker/run-config.json', 'allow'],
    ['s3:GetObject', 'arn:aws:s3:::outputs/runs/run-sm-1/control/stop-request.json', 'allow'],
    [
      's3:PutObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/control/stop-request.json',
      'implicit-deny',
    ],
    ['s3:GetObject', 'arn:aws:s3:::outputs/runs/run-sm-1/final/manifest.json', 'allow'],
    [
      's3:GetObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/checkpoints/step-1/a.bin',
      'implicit-deny',
    ],
    [
      's3:PutObject',
      'arn:aws:s3:::outputs/runs/run-sm-1/checkpoints/step-1/a.bin',
      'implicit-deny',
    ],
    // The progress it publishes from the job's log streams, and the idle check's metrics.
    ['s3:PutObject', 'arn:aws:s3:::outputs/runs/run-sm-1/progress.json', 'allow'],
    ['s3:PutObject', 'arn:aws:s3:::outputs/runs/run-sm-1/metrics.json', 'allow'],
    [
      'logs:GetLogEvents',
      `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:log-stream:tl-f783ff09-x-a1/algo-1-1`,
      'allow',
    ],
    [
      'logs:GetLogEvents',
      `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/lambda/other:log-stream:x`,
      'implicit-deny',
    ],
    [
      'logs:PutLogEvents',
      `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:log-stream:x`,
      'implicit-deny',
    ],
    [
      'logs:DescribeLogStreams',
      `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs`,
      'allow',
    ],
    [
      'logs:DescribeLogStreams',
      `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/lambda/other`,
      'implicit-deny',
    ],
    ['cloudwatch:GetMetricData', '*', 'allow'],
    ['cloudwatch:PutMetricData', '*', 'implicit-deny'],
  ])('controller: %s on %s is %s', (action, resource, decision) => {
    expect(evaluatePolicy(policyOf(jobs.function.role), { action, resource })).toBe(decision);
  });

  test('controller: may pass the execution role to SageMaker and to nothing else', () => {
    const pass = (service: string) =>
      evaluatePolicy(policyOf(jobs.function.role), {
        action: 'iam:PassRole',
        resource: `arn:aws:placeholder:::${roleId(jobs.executionRole)}.Arn`,
        context: { 'iam:PassedToService': service },
      });
    expect(pass('sagemaker.amazonaws.com')).toBe('allow');
    expect(pass('ec2.amazonaws.com')).toBe('implicit-deny');
  });

  test("the controller runs on the safety schedule and on this stack's job state changes", () => {
    const fnId = roleId(jobs.function);
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: Match.arrayWith([Match.objectLike({ Arn: { 'Fn::GetAtt': [fnId, 'Arn'] } })]),
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.sagemaker'],
        'detail-type': ['SageMaker Training Job State Change'],
        detail: { TrainingJobName: [{ prefix: PREFIX }] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [fnId, 'Arn'] } })],
    });
  });

  test('the job settings carry the run, its limits and the ml price', () => {
    const parameter = Object.values(template.findResources('AWS::SSM::Parameter'))[0].Properties;
    expect(parameter.Name).toBe(jobSettingsParameterName('TrainingStack'));
    const literal = JSON.stringify(parameter.Value);
    for (const fragment of [
      '\\"createJob\\":true',
      '\\"instanceType\\":\\"ml.g5.2xlarge\\"',
      '\\"instanceCount\\":2',
      '\\"maxRunCostUsd\\":25',
      '\\"usdPerHour\\":1.515',
      '\\"runId\\":\\"run-sm-1\\"',
    ]) {
      expect(literal).toContain(fragment);
    }
    const fn = Object.values(template.findResources('AWS::Lambda::Function')).find(
      (f) => f.Properties.Environment?.Variables?.[JOBS_ENV.jobSettingsParameter],
    );
    expect(fn?.Properties.Environment.Variables[JOBS_ENV.jobSettingsParameter]).toBe(
      parameter.Name,
    );
  });

  test('the outputs name the backend, the job prefix and the SageMaker log group', () => {
    template.hasOutput(STACK_OUTPUTS.backend, { Value: 'sagemaker' });
    template.hasOutput(STACK_OUTPUTS.trainingJobPrefix, { Value: PREFIX });
    template.hasOutput(STACK_OUTPUTS.logGroup, { Value: '/aws/sagemaker/TrainingJobs' });
    const names = Object.keys(template.toJSON().Outputs);
    const expected = Object.entries(STACK_OUTPUTS)
      .filter(([name]) => !(EC2_ONLY_OUTPUTS as readonly string[]).includes(name))
      .map(([, output]) => output);
    expect(names).toEqual(expect.arrayContaining(expected));
    expect(names).not.toContain(STACK_OUTPUTS.groupName);
  });
});

describe('backend=sagemaker, checks at synth', () => {
  test.each([
    ['no run', { backend: 'sagemaker' }],
    ['a multi-node run with a cost cap', SAGEMAKER_RUN],
  ])('%s: cdk-nag finds nothing unacknowledged', (_name, context) => {
    expect(synthError(nagApp(context).app)).toBe('');
  });

  test('without a run there is no execution role and no job settings, only the controller', () => {
    const { template, stack } = synth({ backend: 'sagemaker' });
    expect(stack.jobs?.executionRole).toBeUndefined();
    template.resourceCountIs('AWS::SSM::Parameter', 0);
    template.resourceCountIs('AWS::Lambda::Function', 2); // safety + job controller
  });
});

describe('backend=ec2 is the default and unchanged', () => {
  test('the explicit default synthesizes the same template as no backend at all', () => {
    const implicit = synth(RUN_CONTEXT).template.toJSON();
    const explicit = synth({ ...RUN_CONTEXT, backend: 'ec2' }).template.toJSON();
    expect(explicit).toEqual(implicit);
    expect(JSON.stringify(implicit)).not.toMatch(/sagemaker|TrainingJobs/i);
  });
});
