import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { TAG_KEYS } from '../lib/contract';
import { SAFETY_ENV } from '../lambda/safety/env';
import { synth } from './support/synth';

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

  test('the topic denies publishing without TLS and lets AWS Budgets publish', () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
          Match.objectLike({
            Sid: 'BudgetsPublish',
            Effect: 'Allow',
            Principal: { Service: 'budgets.amazonaws.com' },
            Action: 'sns:Publish',
          }),
        ]),
      },
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
  const { template } = synth();

  test('no subscription; the budget notifies the topic only', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 0);
    const budget = Object.values(template.findResources('AWS::Budgets::Budget'))[0].Properties;
    for (const n of budget.NotificationsWithSubscribers) expect(n.Subscribers).toHaveLength(1);
  });
});
