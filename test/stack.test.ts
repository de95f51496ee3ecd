import { CfnResource } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SAGEMAKER_ONLY_OUTPUTS, STACK_OUTPUTS } from '../lib/contract';
import { ON_DEMAND_USD_PER_HOUR, PRICE_TABLE_DATE, TABLE_REGIONS } from '../lib/pricing';
import { CDK_JSON_CONTEXT, nagApp, RUN_CONTEXT, synth, synthError } from './support/synth';

describe('synth-time validation', () => {
  test("CloudFormation's default rules run as errors (cdk.json flag)", () => {
    expect(CDK_JSON_CONTEXT['@aws-cdk/core:validateAgainstDefaultRules']).toBe(true);
  });
});

describe('cdk-nag gates (AwsSolutions and NIST 800-53 rev 5)', () => {
  test.each([
    ['defaults', {}],
    [
      'a run with GitHub, email and a cost cap',
      { ...RUN_CONTEXT, githubRepo: 'acme/llm', alertEmail: 'me@acme.dev', maxRunCostUsd: '20' },
    ],
    [
      'g4dn on-demand in an existing network, data not retained',
      {
        instanceTypes: 'g4dn.xlarge',
        useSpot: 'false',
        vpcId: 'vpc-0123456789abcdef0',
        subnetIds: 'subnet-0aaaaaaaaaaaaaaa1',
        retainData: 'false',
      },
    ],
    [
      'a run on a 4-GPU ladder (g5, g6, g6e 12xlarge)',
      { ...RUN_CONTEXT, instanceTypes: 'g6.12xlarge,g5.12xlarge,g6e.12xlarge' },
    ],
    [
      'a run on p5.48xlarge, on demand',
      { ...RUN_CONTEXT, instanceTypes: 'p5.48xlarge', useSpot: 'false' },
    ],
  ])('%s: synthesizes with every finding fixed or acknowledged', (_name, context) => {
    expect(synthError(nagApp(context).app)).toBe('');
  });

  test('an unacknowledged finding fails synthesis and names the rule', () => {
    const { app, stack } = nagApp({});
    new s3.CfnBucket(stack, 'CarelessBucket'); // no encryption, logging, SSL policy...
    const error = synthError(app);
    expect(error).toContain('AwsSolutions-S1');
    expect(error).toContain('TrainingStack/CarelessBucket');
  });

  test('every cdk-nag acknowledgement sits on one CloudFormation resource with a one-sentence reason', () => {
    const { stack } = nagApp({ ...RUN_CONTEXT, githubRepo: 'acme/llm' });
    const acknowledged = stack.node.findAll().flatMap((construct) =>
      construct.node.metadata
        .filter((m) => m.type === 'aws:cdk:acknowledged-rules')
        .flatMap((m) => Object.entries(m.data as Record<string, string>))
        .filter(([id]) => /^(AwsSolutions|NIST)/.test(id))
        .map(([id, reason]) => ({
          path: construct.node.path,
          id,
          reason,
          isResource: construct instanceof CfnResource,
        })),
    );
    expect(acknowledged.length).toBeGreaterThan(20);
    for (const entry of acknowledged) {
      expect(entry).toEqual({ ...entry, isResource: true });
      expect(entry.reason).toMatch(/^[A-Za-z][^]*\.$/);
      expect(entry.reason.split(/\. /)).toHaveLength(1);
    }
  });
});

describe('run settings parameter', () => {
  const { template, settings, stack } = synth({
    ...RUN_CONTEXT,
    maxRunCostUsd: '30',
    instanceTypes: 'g6.xlarge,g5.xlarge',
    debugHoldMinutes: '15',
  });
  const parameter = () =>
    Object.values(template.findResources('AWS::SSM::Parameter'))[0].Properties;
  const document = () => {
    // The value is an Fn::Join of literal JSON and tokens; put placeholders in for the tokens.
    const parts = parameter().Value['Fn::Join'][1] as unknown[];
    return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join(''));
  };

  test('is named /tuning-lab/<stackName>/run-settings and is a Standard String', () => {
    expect(parameter()).toMatchObject({
      Name: '/tuning-lab/TrainingStack/run-settings',
      Type: 'String',
      Tier: 'Standard',
    });
  });

  test('holds the contract document', () => {
    expect(document()).toEqual({
      schemaVersion: 1,
      stackName: 'TrainingStack',
      region: 'us-east-1',
      runId: settings.run?.runId,
      imageUri: expect.stringMatching(/TOKEN.*:latest$/),
      trainerRoleArn: 'TOKEN',
      runConfig: settings.run?.config,
      dataRootUri: 's3://TOKEN/',
      outputUri: `s3://TOKEN/runs/${settings.run?.runId}`,
      logGroupName: 'TOKEN',
      topicArn: 'TOKEN',
      maxRuntimeHours: 12,
      maxRunCostUsd: 30,
      idleMinutes: 30,
      maxRetries: 2,
      debugHoldMinutes: 15,
      onDemandUsdPerHour: {
        'g6.xlarge': ON_DEMAND_USD_PER_HOUR['g6.xlarge'],
        'g5.xlarge': ON_DEMAND_USD_PER_HOUR['g5.xlarge'],
      },
    });
  });

  test("the trainer role ARN in it is the trainer role's", () => {
    const parts = parameter().Value['Fn::Join'][1] as unknown[];
    const at = parts.findIndex((p) => typeof p === 'string' && p.endsWith('"trainerRoleArn":"'));
    expect(parts[at + 1]).toEqual({
      'Fn::GetAtt': [
        stack.getLogicalId(stack.compute.trainerRole?.node.defaultChild as never),
        'Arn',
      ],
    });
  });

  test('the instance role may read it', () => {
    const roleId = stack.getLogicalId(stack.compute.instanceRole.node.defaultChild as never);
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleId }] },
    });
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement,
    );
    expect(statements).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Action: expect.arrayContaining(['ssm:GetParameter']) }),
      ]),
    );
  });

  test('without a run there is no parameter', () => {
    expect(stack.runSettings).toBeDefined();
    const plain = synth();
    plain.template.resourceCountIs('AWS::SSM::Parameter', 0);
  });
});

describe('run settings over 4 KB', () => {
  const dir = mkdtempSync(join(tmpdir(), 'big-run-'));
  const path = join(dir, 'big.yaml');
  // ~4.5 KB of run config: over the Standard tier with the rest, under the 6 KB run-config cap.
  const modules = Array.from({ length: 150 }, (_, i) => `    - layers.${i}.self_attn.q_proj`).join(
    '\n',
  );
  writeFileSync(
    path,
    `model:\n  base_model: builtin:tiny-llama\nlora:\n  target_modules:\n${modules}\ndata:\n  train: d.jsonl\noutput:\n  uri: s3://b/runs/x\n`,
  );
  const { template, report } = synth({ runConfig: path });

  test('use the Advanced tier and warn', () => {
    template.hasResourceProperties('AWS::SSM::Parameter', { Tier: 'Advanced' });
    expect(report).toContain('over the 4 KB of a Standard SSM parameter: using the Advanced tier');
  });
});

describe('prices in a region without a table', () => {
  const { template, report } = synth({ ...RUN_CONTEXT, region: 'ca-central-1' });

  test('are estimated as the us-east-1 price times 1.75 and synth warns', () => {
    const value = JSON.stringify(
      Object.values(template.findResources('AWS::SSM::Parameter'))[0].Properties.Value,
    );
    expect(value).toContain(
      `\\"g5.xlarge\\":${Math.round(ON_DEMAND_USD_PER_HOUR['g5.xlarge'] * 1.75 * 10000) / 10000}`,
    );
    expect(report).toContain(
      `No on-demand price of g5.xlarge in region ca-central-1 in lib/pricing.ts (tables of ` +
        `${PRICE_TABLE_DATE} for ${TABLE_REGIONS.join(', ')}): cost estimates use the us-east-1 ` +
        'price times 1.75, above every regional markup found.',
    );
  });
});

describe('prices in a region with a table', () => {
  const { template, report } = synth({ ...RUN_CONTEXT, region: 'sa-east-1' });

  test("come from the region's table, without a warning", () => {
    const value = JSON.stringify(
      Object.values(template.findResources('AWS::SSM::Parameter'))[0].Properties.Value,
    );
    expect(value).toContain('\\"g5.xlarge\\":1.71');
    expect(report).not.toContain('tuning-lab:estimated-prices');
    expect(report).not.toContain('No on-demand price');
  });
});

describe('a type missing from its region table', () => {
  const { report } = synth({
    ...RUN_CONTEXT,
    region: 'eu-west-1',
    instanceTypes: 'g5.xlarge,g6e.xlarge',
  });

  test('is the only one the warning names', () => {
    expect(report).toContain('No on-demand price of g6e.xlarge in region eu-west-1');
  });
});

describe('stack outputs', () => {
  const { template } = synth({ ...RUN_CONTEXT, githubRepo: 'acme/llm' });
  const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;

  test('name every resource a user needs', () => {
    expect(Object.keys(outputs).sort()).toEqual(
      [
        'AlertsTopicArn',
        'DashboardUrl',
        'DataBucketName',
        'GitHubRoleArn',
        'GpuGroupName',
        'LogGroupName',
        'OutputsBucketName',
        'RepositoryUri',
        'RunId',
        'SafetyFunctionName',
        'SsmSessionCommand',
      ].sort(),
    );
  });

  test('include every output the command line reads (lib/contract.ts STACK_OUTPUTS)', () => {
    const ec2 = Object.entries(STACK_OUTPUTS)
      .filter(([name]) => !(SAGEMAKER_ONLY_OUTPUTS as readonly string[]).includes(name))
      .map(([, output]) => output);
    expect(Object.keys(outputs)).toEqual(expect.arrayContaining(ec2));
  });

  test("the SSM command finds the group's in-service instance and opens a session", () => {
    const command = JSON.stringify(outputs.SsmSessionCommand.Value);
    expect(command).toContain(
      'tuning_lab_instance=$(aws autoscaling describe-auto-scaling-groups --region us-east-1',
    );
    // JSON.stringify escapes the double quotes the shell sees around the query.
    expect(command).toContain(
      `--query \\"AutoScalingGroups[0].Instances[?LifecycleState=='InService'] | [0].InstanceId\\" --output text)`,
    );
    expect(command).toContain(
      'i-*) aws ssm start-session --region us-east-1 --target \\"$tuning_lab_instance\\" ;;',
    );
  });

  test('the SSM command says when no instance is in service instead of --target None', () => {
    const command = JSON.stringify(outputs.SsmSessionCommand.Value);

    expect(command).toContain('is in service, so there is no shell to open');
    expect(command).toContain('>&2; false ;; esac');
    expect(command).not.toMatch(/\bexit\b/); // it runs through eval in the user's own shell
  });
});
