import { Annotations, type CfnElement, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as budgets from 'aws-cdk-lib/aws-budgets';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { join } from 'node:path';
import { SAFETY_ENV } from '../lambda/safety/env';
import { newApiFunction } from './api-function';
import { ledgerKey, messagesPrefix, meterKey, TAG_KEYS } from './contract';
import {
  acknowledgeAlertsKeyUse,
  acknowledgeApiOnlyFunction,
  acknowledgeCheckov,
  acknowledgeFinding,
  acknowledgeGrantPolicy,
  nagArnPrefix,
} from './nag';

export const SAFETY_HANDLER_ENTRY = join(__dirname, '..', 'lambda', 'safety', 'handler.ts');
/** Budget notification thresholds, percent of monthlyBudgetUsd. */
export const BUDGET_ACTUAL_THRESHOLDS = [50, 80, 100];
export const BUDGET_FORECAST_THRESHOLDS = [100];

export interface TrainingSafetyProps {
  /** Holds the run ledgers the Lambda updates when it stops a run. */
  readonly outputsBucket: s3.IBucket;
  /** Runtime limit for an instance of this stack whose limit tag is missing. */
  readonly defaultMaxRuntimeHours: number;
  /** Monthly AWS cost budget (the whole account) in USD. */
  readonly monthlyBudgetUsd: number;
  /**
   * Email subscribed to the alerts topic and to the budget notifications.
   * @default - no subscription; the topic still receives everything
   */
  readonly alertEmail?: string;
  /**
   * How often the safety Lambda checks the instances.
   * @default Duration.minutes(5)
   */
  readonly checkInterval?: Duration;
  /**
   * Keep the Lambda's log group when the stack is deleted.
   * @default true
   */
  readonly retainLogs?: boolean;
}

/**
 * The safety layer: the alerts topic, the scheduled safety Lambda that enforces max runtime and
 * per-run cost caps, an alarm on the Lambda's own errors, and the monthly budget.
 *
 * Created before compute: the instances report to the topic and their group reports launch errors
 * there. The Lambda finds instances by the `tuning-lab:stack` tag and may only set the capacity of,
 * or terminate, resources carrying this stack's tag.
 */
export class TrainingSafety extends Construct {
  public readonly topic: sns.ITopic;
  public readonly topicKey: kms.IKey;
  public readonly function: lambda.IFunction;
  public readonly functionLogGroup: logs.ILogGroup;
  public readonly errorsAlarm: cloudwatch.IAlarm;
  public readonly budget: budgets.CfnBudget;
  /** The check's schedule; the SageMaker job controller is a second target of it. */
  public readonly schedule: events.Rule;

  constructor(scope: Construct, id: string, props: TrainingSafetyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const checkInterval = props.checkInterval ?? Duration.minutes(5);
    const retainLogs = props.retainLogs ?? true;

    const key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the tuning-lab alerts topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // AWS services that publish to the encrypted topic need the key.
    for (const service of ['cloudwatch.amazonaws.com', 'budgets.amazonaws.com']) {
      key.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal(service)],
          actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          resources: ['*'],
          conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
        }),
      );
    }
    // EC2 Auto Scaling publishes launch and terminate events through its service-linked role.
    // Named by condition, not as principal: KMS rejects a principal that does not exist yet,
    // and the role appears only with an account's first Auto Scaling group.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: {
          ArnEquals: {
            'aws:PrincipalArn': stack.formatArn({
              service: 'iam',
              region: '',
              resource: 'role',
              resourceName:
                'aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling',
            }),
          },
        },
      }),
    );
    acknowledgeCheckov(
      key,
      'CKV_AWS_33',
      "The '*' principal is pinned by aws:PrincipalArn to Auto Scaling's service-linked role, " +
        'which KMS would refuse as a principal before the account has one.',
    );
    this.topicKey = key;

    const topic = new sns.Topic(this, 'AlertsTopic', {
      displayName: 'tuning-lab alerts',
      masterKey: key,
      enforceSSL: true,
    });
    // This policy replaces SNS's default one, so every AWS service that publishes here is named:
    // the safety Lambda's error alarm (CloudWatch) and the monthly budget (Budgets). The instance
    // role, the Lambda and Auto Scaling's service-linked role publish through their own IAM
    // policies (same account).
    for (const [sid, service] of [
      ['CloudWatchAlarmsPublish', 'cloudwatch.amazonaws.com'],
      ['BudgetsPublish', 'budgets.amazonaws.com'],
    ]) {
      topic.addToResourcePolicy(
        new iam.PolicyStatement({
          sid,
          principals: [new iam.ServicePrincipal(service)],
          actions: ['sns:Publish'],
          resources: [topic.topicArn],
          conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
        }),
      );
    }
    if (props.alertEmail)
      topic.addSubscription(new subscriptions.EmailSubscription(props.alertEmail));
    this.topic = topic;

    const { fn, role, logGroup } = newApiFunction(this, {
      ids: { function: 'SafetyFunction', role: 'SafetyFunctionRole', logs: 'SafetyFunctionLogs' },
      description: 'Stops tuning-lab GPU instances past their runtime limit or run cost cap',
      roleDescription: 'tuning-lab safety Lambda',
      entry: SAFETY_HANDLER_ENTRY,
      timeout: Duration.minutes(2),
      environment: {
        [SAFETY_ENV.stackName]: stack.stackName,
        [SAFETY_ENV.topicArn]: topic.topicArn,
        [SAFETY_ENV.outputsBucket]: props.outputsBucket.bucketName,
        [SAFETY_ENV.defaultMaxRuntimeHours]: String(props.defaultMaxRuntimeHours),
      },
      alertsTopic: topic,
      retainLogs,
    });
    this.functionLogGroup = logGroup;
    this.function = fn;

    // Finding instances, their groups and prices has no resource scope in IAM.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'ec2:DescribeInstances',
          'ec2:DescribeSpotPriceHistory',
          'autoscaling:DescribeAutoScalingInstances',
        ],
        resources: ['*'],
      }),
    );
    const ownedByThisStack = {
      StringEquals: { [`aws:ResourceTag/${TAG_KEYS.stack}`]: stack.stackName },
    };
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ec2:TerminateInstances'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })],
        conditions: ownedByThisStack,
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['autoscaling:SetDesiredCapacity'],
        resources: ['*'],
        conditions: ownedByThisStack,
      }),
    );
    // Its own meters (what each run cost, from EC2's records) and the ledger of a run it stops.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [
          props.outputsBucket.arnForObjects(ledgerKey('*')),
          props.outputsBucket.arnForObjects(meterKey('*')),
        ],
      }),
    );
    // The messages it sends, kept in the run's messages/ (contract section 12); write only.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.outputsBucket.arnForObjects(`${messagesPrefix('*')}*`)],
      }),
    );
    // Without ListBucket S3 answers 403 for an object that does not exist yet; the Lambda tells
    // "missing" from "denied" by listing that one key (docs/contracts.md section 8).
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [props.outputsBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [ledgerKey('*'), meterKey('*')] } },
      }),
    );
    topic.grantPublish(fn);
    this.acknowledgeFindings(role, fn, props.outputsBucket);

    this.schedule = new events.Rule(this, 'SafetySchedule', {
      description: 'Runs the tuning-lab safety check',
      schedule: events.Schedule.rate(checkInterval),
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 0 })],
    });

    const alarm = new cloudwatch.Alarm(this, 'SafetyErrorsAlarm', {
      alarmDescription:
        'The tuning-lab safety Lambda failed: a GPU instance may not be stopped at its limits. ' +
        'Check its log group.',
      metric: fn.metricErrors({ period: checkInterval, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(topic));
    this.errorsAlarm = alarm;

    this.budget = this.monthlyBudget(props.monthlyBudgetUsd, topic, props.alertEmail);
  }

  private acknowledgeFindings(role: iam.Role, fn: lambda.Function, outputs: s3.IBucket): void {
    const policy = role.node.findChild('DefaultPolicy');
    const stack = Stack.of(this);
    acknowledgeFinding(
      policy,
      'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      'ec2:DescribeInstances, ec2:DescribeSpotPriceHistory and ' +
        'autoscaling:DescribeAutoScalingInstances have no resource-level permissions; ' +
        'autoscaling:SetDesiredCapacity is limited to groups tagged with this stack.',
    );
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${nagArnPrefix(stack, 'ec2')}:instance/*]`,
      'Instance ids are not known in advance; TerminateInstances is limited to instances ' +
        'tagged with this stack.',
    );
    const outputsArn = `<${stack.getLogicalId(outputs.node.defaultChild as CfnElement)}.Arn>`;
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${outputsArn}/${ledgerKey('*')}]`,
      'The Lambda updates the ledger of whichever run it stops, and no other object of a run.',
    );
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${outputsArn}/${meterKey('*')}]`,
      "One meter per run under the Lambda's own prefix, which nothing else may write.",
    );
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${outputsArn}/${messagesPrefix('*')}*]`,
      "The Lambda adds a copy of each message it sends to the run's messages/ folder; " +
        'of a run it writes nothing else but the ledger of a run it stops.',
    );
    acknowledgeAlertsKeyUse(policy);
    acknowledgeGrantPolicy(policy);
    acknowledgeApiOnlyFunction(fn, this.functionLogGroup, {
      overlap: 'overlapping runs are harmless because the handler is idempotent.',
      environment: 'names (stack, topic, bucket) and limits',
    });
  }

  private monthlyBudget(limitUsd: number, topic: sns.ITopic, email?: string): budgets.CfnBudget {
    const subscribers: budgets.CfnBudget.SubscriberProperty[] = [
      { subscriptionType: 'SNS', address: topic.topicArn },
      ...(email ? [{ subscriptionType: 'EMAIL', address: email }] : []),
    ];
    const notification = (type: 'ACTUAL' | 'FORECASTED', threshold: number) => ({
      notification: {
        notificationType: type,
        comparisonOperator: 'GREATER_THAN',
        threshold,
        thresholdType: 'PERCENTAGE',
      },
      subscribers,
    });
    Annotations.of(this).addInfo(
      `The ${limitUsd} USD monthly budget covers the whole account's cost; AWS Budgets refreshes ` +
        'a few times a day, so it is a backstop behind the safety Lambda.',
    );
    return new budgets.CfnBudget(this, 'MonthlyBudget', {
      budget: {
        budgetType: 'COST',
        timeUnit: 'MONTHLY',
        budgetLimit: { amount: limitUsd, unit: 'USD' },
      },
      notificationsWithSubscribers: [
        ...BUDGET_ACTUAL_THRESHOLDS.map((t) => notification('ACTUAL', t)),
        ...BUDGET_FORECAST_THRESHOLDS.map((t) => notification('FORECASTED', t)),
      ],
    });
  }
}
