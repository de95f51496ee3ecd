import { Duration, Stack } from 'aws-cdk-lib';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { METRICS } from './contract';

export interface TrainingDashboardProps {
  /**
   * The GPU capacity: its desired and in-service counts are graphed.
   * @default - no capacity graph (the SageMaker backend has no group)
   */
  readonly group?: autoscaling.IAutoScalingGroup;
  /** The safety Lambda: its errors are graphed. */
  readonly safetyFunction: lambda.IFunction;
  /** The safety Lambda's log group: its stop decisions are listed from it. */
  readonly safetyLogGroup: logs.ILogGroup;
  /**
   * The period of every graph.
   * @default Duration.minutes(1)
   */
  readonly period?: Duration;
}

/**
 * The run dashboard (CloudWatch): what the trainer, the supervisor and the safety Lambda publish
 * (contract section 10), beside the group's capacity.
 *
 * Training graphs use SEARCH over the RunId dimension, so every run of the stack appears with its
 * own line and the dashboard never changes with the configured run: a past run stays visible.
 * Its name is fixed (`<stack>-<region>-run`) so that its URL, a stack output that `tuning-lab
 * status` prints, is known without a lookup; moto's CloudFormation skips dashboards, and a
 * fixed name keeps the output free of a reference to a resource the emulator never made.
 */
export class TrainingDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;
  /** The console URL of the dashboard. */
  public readonly url: string;

  constructor(scope: Construct, id: string, props: TrainingDashboardProps) {
    super(scope, id);
    const period = props.period ?? Duration.minutes(1);
    const stack = Stack.of(this);
    const name = `${stack.stackName}-${stack.region}-run`;

    const perRun = (metricName: string, statistic: string, label: string) =>
      new cloudwatch.MathExpression({
        expression:
          `SEARCH('{${METRICS.namespace},${METRICS.runDimension}} ` +
          `MetricName="${metricName}"', '${statistic}', ${period.toSeconds()})`,
        usingMetrics: {},
        label,
        period,
      });
    const graph = (title: string, left: cloudwatch.IMetric[], unit?: string) =>
      new cloudwatch.GraphWidget({
        title,
        left,
        width: 8,
        height: 6,
        leftYAxis: unit ? { label: unit, showUnits: false } : undefined,
      });

    const groupMetric = (group: autoscaling.IAutoScalingGroup, metricName: string, label: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/AutoScaling',
        metricName,
        dimensionsMap: { AutoScalingGroupName: group.autoScalingGroupName },
        statistic: cloudwatch.Stats.MAXIMUM,
        period,
        label,
      });
    const safetyMetric = (metricName: string, label: string) =>
      new cloudwatch.Metric({
        namespace: METRICS.namespace,
        metricName,
        dimensionsMap: { [METRICS.stackDimension]: stack.stackName },
        statistic: cloudwatch.Stats.SUM,
        period: Duration.minutes(5),
        label,
      });

    const t = METRICS.trainer;
    const g = METRICS.supervisor;
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: name,
      defaultInterval: Duration.hours(12),
      widgets: [
        [
          graph('Training loss and eval loss', [
            perRun(t.loss, 'Average', 'loss'),
            perRun(t.evalLoss, 'Average', 'eval loss'),
          ]),
          graph('Tokens per second', [perRun(t.tokensPerSecond, 'Average', 'tokens/s')]),
          graph('Learning rate', [perRun(t.learningRate, 'Average', 'learning rate')]),
        ],
        [
          graph('GPU utilisation (%)', [perRun(g.gpuUtilisation, 'Average', 'GPU')], '%'),
          graph('GPU memory used (%)', [perRun(g.gpuMemoryUsed, 'Maximum', 'memory')], '%'),
          ...(props.group
            ? [
                graph('GPU capacity (the Auto Scaling group)', [
                  groupMetric(props.group, 'GroupDesiredCapacity', 'desired'),
                  groupMetric(props.group, 'GroupInServiceInstances', 'in service'),
                ]),
              ]
            : []),
        ],
        [
          graph('Safety Lambda: instances checked and stopped', [
            safetyMetric(METRICS.safety.checked, 'checked'),
            safetyMetric(METRICS.safety.stopped, 'stopped'),
            props.safetyFunction.metricErrors({
              period: Duration.minutes(5),
              statistic: cloudwatch.Stats.SUM,
              label: 'errors',
            }),
          ]),
          new cloudwatch.LogQueryWidget({
            title: 'Safety Lambda: stop decisions',
            logGroupNames: [props.safetyLogGroup.logGroupName],
            queryLines: [
              'fields @timestamp, Decisions',
              `filter ${METRICS.safety.stopped} > 0`,
              'sort @timestamp desc',
              'limit 20',
            ],
            width: 16,
            height: 6,
          }),
        ],
      ],
    });
    this.url =
      `https://${stack.region}.console.aws.amazon.com/cloudwatch/home?region=${stack.region}` +
      `#dashboards:name=${name}`;
  }
}
