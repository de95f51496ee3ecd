/**
 * `tuning-lab doctor` against the emulator through the real SDK clients. moto's Service Quotas
 * lacks EC2's and SageMaker's quotas; testing/service_quotas.py adds them at a new account's
 * values (0 vCPUs for G/VT and P, 0 instances per SageMaker training type) and approves
 * increase requests at once.
 */
import { CreateSubnetCommand, CreateVpcCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  RequestServiceQuotaIncreaseCommand,
  ServiceQuotasClient,
} from '@aws-sdk/client-service-quotas';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { checkSageMakerQuotas, type CheckLine } from '../cli/doctor/checks';
import { parseSettings } from '../lib/config';
import { useOwnEmulator } from './support/cli-moto';

const emulator = useOwnEmulator();
const SPOT_G = 'L-3819A6DF';
const ON_DEMAND_G = 'L-DB2E81BA';

async function doctor(...args: string[]): Promise<{ code: number; checks: CheckLine[] }> {
  const result = await emulator.run(['doctor', '--json', ...args]);
  return { code: result.code, checks: JSON.parse(result.stdout).checks };
}

const line = (checks: CheckLine[], check: string) => checks.filter((c) => c.check === check);

async function raiseQuota(code: string, value: number, service = 'ec2'): Promise<void> {
  await new ServiceQuotasClient(emulator.config()).send(
    new RequestServiceQuotaIncreaseCommand({
      ServiceCode: service,
      QuotaCode: code,
      DesiredValue: value,
    }),
  );
}

/** A subnet of a new VPC in `zone`, as `-c vpcId=... -c subnetIds=...` name them. */
async function subnetIn(zone: string): Promise<string[]> {
  const ec2 = new EC2Client(emulator.config());
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.9.0.0/16' }));
  const subnet = await ec2.send(
    new CreateSubnetCommand({
      VpcId: vpc.Vpc?.VpcId,
      CidrBlock: '10.9.1.0/24',
      AvailabilityZone: zone,
    }),
  );
  return ['-c', `vpcId=${vpc.Vpc?.VpcId}`, '-c', `subnetIds=${subnet.Subnet?.SubnetId}`];
}

beforeEach(() => emulator.reset());

test('a zero spot quota FAILs with the exact increase command', async () => {
  const { code, checks } = await doctor();

  expect(code).toBe(1);
  expect(line(checks, 'quota')).toEqual([
    {
      verdict: 'FAIL',
      check: 'quota',
      detail: expect.stringContaining(
        `spot All G and VT Spot Instance Requests (${SPOT_G}): 0 vCPUs`,
      ),
      fix: expect.stringContaining(
        `aws service-quotas request-service-quota-increase --service-code ec2 ` +
          `--quota-code ${SPOT_G} --desired-value 4 --region us-east-1`,
      ),
    },
  ]);
});

test('the quota checked is the market the run uses (on-demand with useSpot=false)', async () => {
  await raiseQuota(SPOT_G, 8);

  const { checks } = await doctor('-c', 'useSpot=false');

  expect(line(checks, 'quota')[0]).toEqual(
    expect.objectContaining({ verdict: 'FAIL', detail: expect.stringContaining(ON_DEMAND_G) }),
  );
});

test('a quota that fits the largest type PASSes; one between the types WARNs', async () => {
  await raiseQuota(SPOT_G, 4);

  const between = await doctor('-c', 'instanceTypes=g5.xlarge,g5.2xlarge');
  await raiseQuota(SPOT_G, 8);
  const enough = await doctor('-c', 'instanceTypes=g5.xlarge,g5.2xlarge');

  expect(line(between.checks, 'quota')[0]).toEqual(
    expect.objectContaining({
      verdict: 'WARN',
      detail: expect.stringContaining('only g5.xlarge can launch'),
      fix: expect.stringContaining('--desired-value 8'),
    }),
  );
  expect(line(enough.checks, 'quota')[0].verdict).toBe('PASS');
});

test('a type that no launch zone offers FAILs', async () => {
  const network = await subnetIn('us-east-1e'); // moto's data: no g5 there, as in AWS

  const { code, checks } = await doctor(...network);

  expect(code).toBe(1);
  expect(line(checks, 'offering')).toEqual([
    expect.objectContaining({
      verdict: 'FAIL',
      detail: expect.stringContaining('g5.xlarge is offered in none of us-east-1e'),
      fix: expect.stringContaining('aws ec2 describe-instance-type-offerings'),
    }),
  ]);
});

test('a type offered in the launch zones PASSes', async () => {
  const network = await subnetIn('us-east-1a');

  const { checks } = await doctor(...network);

  expect(line(checks, 'offering')).toEqual([
    expect.objectContaining({ verdict: 'PASS', detail: expect.stringContaining('us-east-1a') }),
  ]);
});

test('an account without the CDK bootstrap FAILs with the bootstrap command; with it, PASS', async () => {
  const before = line((await doctor()).checks, 'CDK bootstrap')[0];
  await new SSMClient(emulator.config()).send(
    new PutParameterCommand({
      Name: '/cdk-bootstrap/hnb659fds/version',
      Value: '30',
      Type: 'String',
    }),
  );
  const after = line((await doctor()).checks, 'CDK bootstrap')[0];

  expect(before).toEqual(
    expect.objectContaining({
      verdict: 'FAIL',
      fix: 'npx cdk bootstrap aws://123456789012/us-east-1',
    }),
  );
  expect(after).toEqual(
    expect.objectContaining({ verdict: 'PASS', detail: 'version 30 in us-east-1' }),
  );
});

test('credentials and account come first', async () => {
  const { checks } = await doctor();

  expect(checks[0]).toEqual(
    expect.objectContaining({
      verdict: 'PASS',
      check: 'credentials',
      detail: expect.stringContaining('account 123456789012'),
    }),
  );
});

test('a run config gets a cost estimate, labelled as one', async () => {
  const { checks } = await doctor('--run-config', 'test/fixtures/tiny-run.yaml');

  expect(line(checks, 'estimate')).toEqual([
    expect.objectContaining({
      verdict: 'PASS',
      detail: expect.stringMatching(
        /^ESTIMATE g5\.xlarge: 4 steps x 32768 tokens .* at on-demand \$1\.01\/h/,
      ),
    }),
  ]);
});

test('without a deployed stack the image is a WARN that says to deploy first', async () => {
  const { checks } = await doctor();

  expect(line(checks, 'image')[0]).toEqual(
    expect.objectContaining({ verdict: 'WARN', fix: expect.stringContaining('npx cdk deploy') }),
  );
});

test('a bad -c value is exit 2 naming it', async () => {
  const result = await emulator.run(['doctor', '-c', 'instanceTypes=m5.large']);

  expect(result.code).toBe(2);
  expect(result.stderr).toContain("'m5.large' is not a GPU type");
});

test('the text output has a verdict and a fix on every line that needs one', async () => {
  const result = await emulator.run(['doctor']);

  expect(result.stdout).toMatch(/^FAIL {2}quota +spot All G and VT/m);
  expect(result.stdout).toMatch(/^ +fix: aws service-quotas request-service-quota-increase/m);
  expect(result.stdout).toMatch(/\d+ passed, \d+ warnings, \d+ failed/);
});

describe('backend sagemaker: per-type SageMaker training quotas instead of EC2 vCPUs', () => {
  const SPOT_G5_XLARGE = 'L-DE07CBDF'; // ml.g5.xlarge for spot training job usage
  const ON_DEMAND_G5_2XLARGE = 'L-2D6DEB3C'; // ml.g5.2xlarge for training job usage

  test('a zero spot training quota FAILs with the exact sagemaker increase command', async () => {
    const { code, checks } = await doctor('--backend', 'sagemaker');

    expect(code).toBe(1);
    expect(line(checks, 'quota')).toEqual([
      {
        verdict: 'FAIL',
        check: 'quota',
        detail: expect.stringContaining(
          `spot SageMaker ml.g5.xlarge for spot training job usage (${SPOT_G5_XLARGE}): ` +
            '0 instances; a job needs 1 instance',
        ),
        fix: expect.stringContaining(
          'aws service-quotas request-service-quota-increase --service-code sagemaker ' +
            `--quota-code ${SPOT_G5_XLARGE} --desired-value 1 --region us-east-1`,
        ),
      },
    ]);
    expect(line(checks, 'offering')).toEqual([]);
    expect(line(checks, 'AMI')).toEqual([]);
  });

  test('on-demand uses the training job quota; one that fits PASSes, the other type WARNs', async () => {
    await raiseQuota(ON_DEMAND_G5_2XLARGE, 1, 'sagemaker');

    const { checks } = await doctor(
      '--backend',
      'sagemaker',
      '-c',
      'useSpot=false',
      '-c',
      'instanceTypes=g5.2xlarge,g6.2xlarge',
    );

    expect(line(checks, 'quota')).toEqual([
      expect.objectContaining({
        verdict: 'PASS',
        detail: expect.stringContaining(
          `ml.g5.2xlarge for training job usage (${ON_DEMAND_G5_2XLARGE}): 1`,
        ),
      }),
      expect.objectContaining({
        verdict: 'WARN',
        detail: expect.stringContaining('only ml.g5.2xlarge can start'),
        fix: expect.stringContaining('--quota-code L-A1025C0C --desired-value 1'),
      }),
    ]);
  });

  test("a quota below the job's instance count FAILs asking for the count", async () => {
    await raiseQuota(ON_DEMAND_G5_2XLARGE, 1, 'sagemaker');
    const settings = parseSettings(
      { instanceTypes: 'g5.2xlarge', useSpot: 'false' },
      { cwd: process.cwd() },
    );

    const lines = await checkSageMakerQuotas(new ServiceQuotasClient(emulator.config()), {
      settings,
      region: 'us-east-1',
      stackName: 'TrainingStack',
      backend: 'sagemaker',
      instanceCount: 2,
    });

    expect(lines).toEqual([
      expect.objectContaining({
        verdict: 'FAIL',
        detail: expect.stringContaining('1 instances; a job needs 2 instances; no job can start'),
        fix: expect.stringContaining(`--quota-code ${ON_DEMAND_G5_2XLARGE} --desired-value 2`),
      }),
    ]);
  });

  test("the estimate prices the run at the ml type's SageMaker training price", async () => {
    const { checks } = await doctor(
      '--backend',
      'sagemaker',
      '--run-config',
      'test/fixtures/tiny-run.yaml',
    );

    expect(line(checks, 'estimate')).toEqual([
      expect.objectContaining({
        detail: expect.stringMatching(/^ESTIMATE ml\.g5\.xlarge: .* at on-demand \$1\.41\/h/),
      }),
    ]);
  });

  test('a quota whose code no source confirmed is a WARN that says so and how to find it', async () => {
    const { checks } = await doctor('--backend', 'sagemaker', '-c', 'instanceTypes=p5.48xlarge');

    expect(line(checks, 'quota')).toEqual([
      expect.objectContaining({
        verdict: 'WARN',
        detail: expect.stringContaining("no source confirmed this quota's code"),
        fix: expect.stringContaining(
          '--service-code sagemaker --region us-east-1 --query "Quotas[?QuotaName==\'ml.p5.48xlarge ' +
            'for spot training job usage\'].[QuotaCode,Value]"',
        ),
      }),
    ]);
  });
});
