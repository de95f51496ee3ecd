import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { TAG_KEYS } from '../lib/contract';
import { SAFETY_ENV } from '../lambda/safety/env';
import { evaluatePolicy, resolveIntrinsics, type PolicyRequest } from './support/iam-policy';
import { synth } from './support/synth';

const ACCOUNT = '111111111111';
const OTHER_ACCOUNT = '222222222222';
const TOPIC_ARN = `arn:aws:sns:us-east-1:${ACCOUNT}:alerts`;
const KEY_ARN = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

const plain = synth();

describe('safety layer (Lambda bundled by esbuild for real)', () => {
  const { template, stack, app } = synth(
    { alertEmail: 'me@acme.dev', monthlyBudgetUsd: '75', maxRuntimeHours: '8' },
    { bundle: true },
  );
  const topicId = stack.getLogicalId(stack.safety.topic.node.defaultChild as never);
  const fn = () => Object.values(template.findResources('AWS::Lambda::Function'))[0].Properties;

  test('the Lambda bundle is a single JavaScript file with the handler', () => {
    const code = fn().Code;
    const assetDir = join(app.outdir, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
    expect(existsSync(join(assetDir, 'index.js'))).toBe(true);
    const source = readFileSync(join(assetDir, 'index.js'), 'utf8');
    expect(source).toContain('handler');
    expect(source).not.toContain('aws-cdk-lib'); // the pure modules it shares with lib/ stay light
  });

  test('the Lambda runs on the latest Node runtime with an explicit timeout and memory', () => {
    expect(fn()).toMatchObject({
      Runtime: 'nodejs24.x',
      Timeout: 120,
      MemorySize: 256,
      Handler: 'index.handler',
    });
  });

  test('failed invocations go to the alerts topic (dead-letter topic), no retries', () => {
    expect(fn().DeadLetterConfig).toEqual({ TargetArn: { Ref: topicId } });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 0 });
  });

  test('the Lambda gets its settings through the shared environment names', () => {
    expect(fn().Environment.Variables).toMatchObject({
      [SAFETY_ENV.stackName]: 'TrainingStack',
      [SAFETY_ENV.topicArn]: { Ref: topicId },
      [SAFETY_ENV.defaultMaxRuntimeHours]: '8',
      [SAFETY_ENV.outputsBucket]: {
        Ref: stack.getLogicalId(stack.storage.outputsBucket.node.defaultChild as never),
      },
    });
  });

  test('the Lambda logs to its own log group with a retention', () => {
    const logGroupId = stack.getLogicalId(stack.safety.functionLogGroup.node.defaultChild as never);
    expect(fn().LoggingConfig).toMatchObject({ LogGroup: { Ref: logGroupId }, LogFormat: 'JSON' });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('a schedule runs the Lambda every 5 minutes', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('SafetyFunction'), 'Arn'] },
        }),
      ],
    });
  });

  test('an alarm on the Lambda errors notifies the topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Errors',
      Namespace: 'AWS/Lambda',
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: topicId }],
    });
  });

  test('the Lambda may terminate and scale only resources tagged with this stack', () => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('SafetySafetyFunctionRole') }] },
    });
    const statements = Object.values(policies)
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s) =>
        ['ec2:TerminateInstances', 'autoscaling:SetDesiredCapacity'].includes(s.Action),
      );
    expect(statements).toHaveLength(2);
    for (const statement of statements) {
      expect(statement.Condition).toEqual({
        StringEquals: { [`aws:ResourceTag/${TAG_KEYS.stack}`]: 'TrainingStack' },
      });
    }
  });

  test('the topic is encrypted with a rotating KMS key', () => {
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('TopicKey'), 'Arn'] },
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('the topic denies publishing without TLS and lets CloudWatch and AWS Budgets publish', () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
          Match.objectLike({
            Sid: 'CloudWatchAlarmsPublish',
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          }),
          Match.objectLike({
            Sid: 'BudgetsPublish',
            Effect: 'Allow',
            Principal: { Service: 'budgets.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          }),
        ]),
      },
    });
  });

  describe("the Lambda's role", () => {
    const statements = () => {
      const policies = template.findResources('AWS::IAM::Policy', {
        Properties: { Roles: [{ Ref: Match.stringLikeRegexp('SafetySafetyFunctionRole') }] },
      });
      return Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
    };
    const outputsId = stack.getLogicalId(stack.storage.outputsBucket.node.defaultChild as never);
    const outputsArn = { 'Fn::GetAtt': [outputsId, 'Arn'] };
    const objectArn = (key: string) => ({ 'Fn::Join': ['', [outputsArn, `/${key}`]] });
    /** The role's policy with concrete ARNs, for the policy evaluator. */
    const document = () =>
      resolveIntrinsics(
        { Statement: statements() },
        { [`${outputsId}.Arn`]: 'arn:aws:s3:::outputs', 'AWS::AccountId': ACCOUNT },
        (name) => `arn:aws:placeholder:::${name}`,
      );

    test('may describe instances, their groups and spot prices, which have no resource scope', () => {
      expect(statements().filter((s) => s.Resource === '*' && !s.Condition)).toEqual([
        {
          Action: [
            'autoscaling:DescribeAutoScalingInstances',
            'ec2:DescribeInstances',
            'ec2:DescribeSpotPriceHistory',
          ],
          Effect: 'Allow',
          Resource: '*',
        },
      ]);
    });

    test('may read and write the ledgers and its meters, add messages, and no other object', () => {
      const objects = statements().filter((s) =>
        [s.Action].flat().some((a: string) => /^s3:(Get|Put)Object$/.test(a)),
      );
      expect(objects).toEqual([
        {
          Action: ['s3:GetObject', 's3:PutObject'],
          Effect: 'Allow',
          Resource: [objectArn('runs/*/ledger.json'), objectArn('safety/meters/*.json')],
        },
        { Action: 's3:PutObject', Effect: 'Allow', Resource: objectArn('runs/*/messages/*') },
      ]);
    });

    test('may list only the ledger and meter keys, to tell a missing key from a denied one', () => {
      expect(statements()).toEqual(
        expect.arrayContaining([
          {
            Action: 's3:ListBucket',
            Effect: 'Allow',
            Resource: outputsArn,
            Condition: {
              StringLike: { 's3:prefix': ['runs/*/ledger.json', 'safety/meters/*.json'] },
            },
          },
        ]),
      );
    });

    test.each([
      ['s3:PutObject', 'outputs/safety/meters/run-1.json', 'allow'],
      ['s3:PutObject', 'outputs/runs/run-1/ledger.json', 'allow'],
      ['s3:PutObject', 'outputs/runs/run-1/lease.json', 'implicit-deny'],
      ['s3:PutObject', 'outputs/runs/run-1/messages/20261201T000000.000Z-safety-x.json', 'allow'],
      [
        's3:GetObject',
        'outputs/runs/run-1/messages/20261201T000000.000Z-safety-x.json',
        'implicit-deny',
      ],
      ['s3:PutObject', 'outputs/runs/run-1/progress.json', 'implicit-deny'],
      [
        's3:GetObject',
        'outputs/runs/run-1/checkpoints/step-1/adapter.safetensors',
        'implicit-deny',
      ],
      ['s3:DeleteObject', 'outputs/safety/meters/run-1.json', 'implicit-deny'],
    ])('%s on %s is %s', (action, path, decision) => {
      expect(evaluatePolicy(document(), { action, resource: `arn:aws:s3:::${path}` })).toBe(
        decision,
      );
    });

    test.each([
      ['safety/meters/run-1.json', 'allow'],
      ['runs/run-1/ledger.json', 'allow'],
      ['runs/run-1/', 'implicit-deny'],
      ['safety/', 'implicit-deny'],
    ])('ListBucket with prefix %s is %s', (prefix, decision) => {
      expect(
        evaluatePolicy(document(), {
          action: 's3:ListBucket',
          resource: 'arn:aws:s3:::outputs',
          context: { 's3:prefix': prefix },
        }),
      ).toBe(decision);
    });
  });

  test('alertEmail subscribes to the topic', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'me@acme.dev',
      TopicArn: { Ref: topicId },
    });
  });

  test('the monthly budget notifies at 50/80/100 % actual and 100 % forecast, to the topic and the email', () => {
    const budget = Object.values(template.findResources('AWS::Budgets::Budget'))[0].Properties;
    expect(budget.Budget).toEqual({
      BudgetType: 'COST',
      TimeUnit: 'MONTHLY',
      BudgetLimit: { Amount: 75, Unit: 'USD' },
    });
    const notifications = budget.NotificationsWithSubscribers.map(
      (n: { Notification: { NotificationType: string; Threshold: number } }) => [
        n.Notification.NotificationType,
        n.Notification.Threshold,
      ],
    );
    expect(notifications).toEqual([
      ['ACTUAL', 50],
      ['ACTUAL', 80],
      ['ACTUAL', 100],
      ['FORECASTED', 100],
    ]);
    for (const n of budget.NotificationsWithSubscribers) {
      expect(n.Subscribers).toEqual([
        { SubscriptionType: 'SNS', Address: { Ref: topicId } },
        { SubscriptionType: 'EMAIL', Address: 'me@acme.dev' },
      ]);
    }
  });
});

describe('safety layer without alertEmail', () => {
  const { template } = plain;

  test('no subscription; the budget notifies the topic only', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 0);
    const budget = Object.values(template.findResources('AWS::Budgets::Budget'))[0].Properties;
    for (const n of budget.NotificationsWithSubscribers) expect(n.Subscribers).toHaveLength(1);
  });
});

describe('who may publish to the alerts topic (its resource policy, evaluated)', () => {
  const { template, stack } = plain;
  const topicId = stack.getLogicalId(stack.safety.topic.node.defaultChild as never);
  const keyId = stack.getLogicalId(stack.safety.topicKey.node.defaultChild as never);
  const values = { [topicId]: TOPIC_ARN, [`${keyId}.Arn`]: KEY_ARN, 'AWS::AccountId': ACCOUNT };
  const topicPolicy = () => {
    const policies = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    expect(policies).toHaveLength(1);
    expect(policies[0].Properties.Topics).toEqual([{ Ref: topicId }]);
    return resolveIntrinsics(policies[0].Properties.PolicyDocument, values);
  };
  const keyPolicy = () =>
    resolveIntrinsics(template.toJSON().Resources[keyId].Properties.KeyPolicy, values);
  const publish = (service: string, context: Record<string, string>): PolicyRequest => ({
    principal: { Service: service },
    action: 'sns:Publish',
    resource: TOPIC_ARN,
    context,
  });
  const overTls = { 'aws:SourceAccount': ACCOUNT, 'aws:SecureTransport': 'true' };

  test("CloudWatch (the Lambda's error alarm) may publish", () => {
    expect(evaluatePolicy(topicPolicy(), publish('cloudwatch.amazonaws.com', overTls))).toBe(
      'allow',
    );
  });

  test('AWS Budgets (the monthly budget) may publish', () => {
    expect(evaluatePolicy(topicPolicy(), publish('budgets.amazonaws.com', overTls))).toBe('allow');
  });

  test("CloudWatch on behalf of another account's alarm may not", () => {
    expect(
      evaluatePolicy(
        topicPolicy(),
        publish('cloudwatch.amazonaws.com', { ...overTls, 'aws:SourceAccount': OTHER_ACCOUNT }),
      ),
    ).toBe('implicit-deny');
  });

  test('any publish without TLS is denied explicitly', () => {
    const plainText = { ...overTls, 'aws:SecureTransport': 'false' };
    expect(evaluatePolicy(topicPolicy(), publish('cloudwatch.amazonaws.com', plainText))).toBe(
      'explicit-deny',
    );
    expect(
      evaluatePolicy(topicPolicy(), {
        principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/anyone` },
        action: 'sns:Publish',
        resource: TOPIC_ARN,
        context: plainText,
      }),
    ).toBe('explicit-deny');
  });

  test('a service the policy does not name may not publish', () => {
    expect(evaluatePolicy(topicPolicy(), publish('events.amazonaws.com', overTls))).toBe(
      'implicit-deny',
    );
  });

  test.each(['cloudwatch.amazonaws.com', 'budgets.amazonaws.com'])(
    '%s may use the topic key for its own account only',
    (service) => {
      const request = (account: string): PolicyRequest => ({
        principal: { Service: service },
        action: 'kms:GenerateDataKey',
        resource: KEY_ARN,
        context: { 'aws:SourceAccount': account },
      });
      expect(evaluatePolicy(keyPolicy(), request(ACCOUNT))).toBe('allow');
      expect(evaluatePolicy(keyPolicy(), request(OTHER_ACCOUNT))).toBe('implicit-deny');
    },
  );
});
