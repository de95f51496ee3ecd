import { METRICS } from '../lib/contract';
import { decisionMetrics } from '../lambda/safety/report';
import { RUN_CONTEXT, synth } from './support/synth';

/** The dashboard body with its intrinsics flattened: tokens become `<Ref>`-like markers. */
function dashboardBody(template: ReturnType<typeof synth>['template']): string {
  const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  const parts = dashboard.Properties.DashboardBody['Fn::Join'][1] as unknown[];
  return parts.map((part) => (typeof part === 'string' ? part : JSON.stringify(part))).join('');
}

describe('the run dashboard', () => {
  const { template, stack } = synth(RUN_CONTEXT);
  const body = dashboardBody(template);

  test('the stack has one dashboard with a fixed, region-qualified name', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
      DashboardName: 'TrainingStack-us-east-1-run',
    });
  });

  test.each([
    METRICS.trainer.loss,
    METRICS.trainer.evalLoss,
    METRICS.trainer.tokensPerSecond,
    METRICS.trainer.learningRate,
    METRICS.supervisor.gpuUtilisation,
    METRICS.supervisor.gpuMemoryUsed,
  ])('graphs %s of every run (SEARCH over the RunId dimension)', (metric) => {
    expect(body).toContain(
      `SEARCH('{${METRICS.namespace},${METRICS.runDimension}} MetricName=\\"${metric}\\"'`,
    );
  });

  test("graphs the group's desired and in-service capacity", () => {
    const groupId = stack.getLogicalId(stack.compute.group.node.defaultChild as never);
    expect(body).toContain('"AWS/AutoScaling","GroupDesiredCapacity","AutoScalingGroupName"');
    expect(body).toContain('"AWS/AutoScaling","GroupInServiceInstances","AutoScalingGroupName"');
    expect(body).toContain(JSON.stringify({ Ref: groupId }));
  });

  test("graphs the safety Lambda's decisions and lists its stops from its log group", () => {
    expect(body).toContain(
      `"${METRICS.namespace}","${METRICS.safety.stopped}","Stack","TrainingStack"`,
    );
    expect(body).toContain(
      `"${METRICS.namespace}","${METRICS.safety.checked}","Stack","TrainingStack"`,
    );
    const logGroupId = stack.getLogicalId(stack.safety.functionLogGroup.node.defaultChild as never);
    expect(body).toContain(JSON.stringify({ Ref: logGroupId }));
    expect(body).toContain(`filter ${METRICS.safety.stopped} > 0`);
  });

  test('its URL is a stack output that names no resource (the emulator skips dashboards)', () => {
    const output = template.findOutputs('DashboardUrl').DashboardUrl;
    expect(output.Value).toBe(
      'https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1' +
        '#dashboards:name=TrainingStack-us-east-1-run',
    );
  });

  test('a stack without a run has the dashboard too (past runs stay visible)', () => {
    synth().template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  test('the dashboard reads the names the emitters write', () => {
    const emf = decisionMetrics(
      { checked: 2, stopped: [{ instanceId: 'i-1', runId: 'run-a', detail: 'max-runtime' }] },
      'TrainingStack',
      new Date('2026-12-01T00:00:00Z'),
    );
    expect(emf).toEqual(
      expect.objectContaining({
        _aws: {
          Timestamp: Date.parse('2026-12-01T00:00:00Z'),
          CloudWatchMetrics: [
            {
              Namespace: METRICS.namespace,
              Dimensions: [['Stack']],
              Metrics: [
                { Name: METRICS.safety.checked, Unit: 'Count' },
                { Name: METRICS.safety.stopped, Unit: 'Count' },
              ],
            },
          ],
        },
        Stack: 'TrainingStack',
        InstancesChecked: 2,
        InstancesStopped: 1,
        Decisions: 'i-1 (run-a): max-runtime',
      }),
    );
  });
});
