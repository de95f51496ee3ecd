import { parseSettings, SETTING_KEYS } from '../lib/config';
import { UserInputError } from '../lib/errors';
import { ROOT, TINY_RUN_CONFIG } from './support/synth';

const parse = (context: Record<string, unknown>) => parseSettings(context, { cwd: ROOT });

function errorOf(context: Record<string, unknown>): string {
  try {
    parse(context);
  } catch (error) {
    expect(error).toBeInstanceOf(UserInputError);
    return (error as Error).message;
  }
  throw new Error('expected a UserInputError');
}

describe('defaults', () => {
  test('no context gives the documented defaults and no run', () => {
    const s = parse({});
    expect(s).toMatchObject({
      createInstance: false,
      instanceTypes: ['g5.xlarge'],
      useSpot: true,
      maxRuntimeHours: 12,
      idleMinutes: 30,
      monthlyBudgetUsd: 50,
      githubBranch: 'main',
      rootVolumeGiB: 200,
      imageTag: 'latest',
      retainData: true,
      debugHoldMinutes: 0,
      maxRetries: 2,
      backend: 'ec2',
      instanceCount: 1,
    });
    expect(s.run).toBeUndefined();
    expect(s.maxRunCostUsd).toBeUndefined();
  });

  test('every documented setting is a key of the schema', () => {
    expect([...SETTING_KEYS].sort()).toEqual(
      [
        'alertEmail',
        'backend',
        'createInstance',
        'debugHoldMinutes',
        'githubBranch',
        'githubOidcProviderArn',
        'githubRepo',
        'idleMinutes',
        'imageTag',
        'instanceCount',
        'instanceTypes',
        'maxRetries',
        'maxRunCostUsd',
        'maxRuntimeHours',
        'monthlyBudgetUsd',
        'region',
        'retainData',
        'rootVolumeGiB',
        'runConfig',
        'runId',
        'subnetIds',
        'useSpot',
        'vpcId',
      ].sort(),
    );
  });
});

describe('coercion of -c strings', () => {
  test('booleans, numbers and comma lists arrive as strings and are coerced', () => {
    const s = parse({
      useSpot: 'false',
      retainData: 'false',
      maxRuntimeHours: '2.5',
      maxRunCostUsd: '40',
      instanceTypes: 'g6.xlarge, g5.xlarge',
      rootVolumeGiB: '300',
    });
    expect(s).toMatchObject({
      useSpot: false,
      retainData: false,
      maxRuntimeHours: 2.5,
      maxRunCostUsd: 40,
      instanceTypes: ['g6.xlarge', 'g5.xlarge'],
      rootVolumeGiB: 300,
    });
  });

  test('cdk.json values keep their JSON types', () => {
    const s = parse({ useSpot: false, instanceTypes: ['g4dn.xlarge'], idleMinutes: 10 });
    expect(s).toMatchObject({ useSpot: false, instanceTypes: ['g4dn.xlarge'], idleMinutes: 10 });
  });

  test("CDK's own context keys are not settings and pass through", () => {
    expect(() =>
      parse({
        '@aws-cdk/core:validateAgainstDefaultRules': true,
        'aws:cdk:bundling-stacks': ['**'],
        'availability-zones:account=123456789012:region=us-east-1': ['us-east-1a'],
        'acknowledged-issue-numbers': [1234],
        'cdk-migrate': true,
      }),
    ).not.toThrow();
  });
});

describe('bad values name the key, the value and what is allowed', () => {
  test.each([
    [
      { instanceTypes: 'm5.large' },
      "Invalid setting instanceTypes=m5.large: 'm5.large' is not a GPU type",
    ],
    [
      { instanceTypes: 'g5.superlarge' },
      "'g5.superlarge' is not a g5 size tuning-lab supports (the types of lib/instance-types.ts); " +
        'use one of g5.xlarge, g5.2xlarge, g5.4xlarge, g5.8xlarge, g5.16xlarge, g5.12xlarge, ' +
        'g5.24xlarge, g5.48xlarge',
    ],
    [
      { instanceTypes: 'g4dn.12xlarge' },
      "Invalid setting instanceTypes=g4dn.12xlarge: 'g4dn.12xlarge' is not a g4dn size " +
        'tuning-lab supports (the types of lib/instance-types.ts)',
    ],
    [
      { instanceTypes: 'p5e.48xlarge' },
      "Invalid setting instanceTypes=p5e.48xlarge: 'p5e.48xlarge' is a GPU type tuning-lab has " +
        'no figures for (the types of lib/instance-types.ts); use g4dn, g5, g6, g6e, p4d, p5 ' +
        'sizes, e.g. g6e.12xlarge or p5.48xlarge.',
    ],
    [
      { maxRuntimeHours: '0' },
      'Invalid setting maxRuntimeHours=0: must be a number of hours > 0 and <= 168',
    ],
    [
      { maxRuntimeHours: '169' },
      'Invalid setting maxRuntimeHours=169: must be a number of hours > 0 and <= 168',
    ],
    [
      { maxRuntimeHours: 'soon' },
      'Invalid setting maxRuntimeHours=soon: must be a number of hours',
    ],
    [{ monthlyBudgetUsd: '0' }, 'Invalid setting monthlyBudgetUsd=0: must be a number of USD > 0'],
    [
      { monthlyBudgetUsd: '-5' },
      'Invalid setting monthlyBudgetUsd=-5: must be a number of USD > 0',
    ],
    [{ maxRunCostUsd: '0' }, 'Invalid setting maxRunCostUsd=0: must be a number of USD > 0'],
    [
      { alertEmail: 'me-at-acme' },
      'Invalid setting alertEmail=me-at-acme: must be an email address',
    ],
    [{ githubRepo: 'acme' }, 'Invalid setting githubRepo=acme: must be owner/name'],
    [{ githubRepo: 'acme/*' }, 'Invalid setting githubRepo=acme/*: must be owner/name'],
    [
      { githubRepo: 'acme/llm', githubBranch: 'release/*' },
      'Invalid setting githubBranch=release/*: must be a branch name',
    ],
    [{ createInstance: 'yes' }, 'Invalid setting createInstance=yes: must be true or false'],
    [
      { rootVolumeGiB: '50' },
      'Invalid setting rootVolumeGiB=50: must be a whole number of GiB from 100 to 16384',
    ],
    [
      { idleMinutes: '4' },
      'Invalid setting idleMinutes=4: must be a whole number of minutes from 5 to 1440',
    ],
    [
      { debugHoldMinutes: '241' },
      'Invalid setting debugHoldMinutes=241: must be a whole number of minutes from 0 to 240',
    ],
    [
      { maxRetries: '6' },
      'Invalid setting maxRetries=6: must be a whole number of retries from 0 to 5',
    ],
    [{ region: 'Europe' }, 'Invalid setting region=Europe: must be an AWS region name'],
    [{ imageTag: 'my tag' }, 'Invalid setting imageTag=my tag: must be a container image tag'],
    [
      { vpcId: 'vpc-0123456789abcdef0' },
      'an existing network needs both vpcId and subnetIds; subnetIds is missing',
    ],
    [
      { vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-x' },
      'Invalid setting subnetIds=subnet-x: must be subnet ids',
    ],
    [
      {
        githubOidcProviderArn:
          'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com',
      },
      'it is only used for the GitHub role, which needs githubRepo',
    ],
    [
      { githubRepo: 'a/b', githubOidcProviderArn: 'arn:aws:iam::1:oidc-provider/x' },
      'must be the ARN of the account GitHub OIDC provider',
    ],
  ])('%j', (context, message) => {
    expect(errorOf(context)).toContain(message);
  });

  test('the message is one line', () => {
    expect(errorOf({ instanceTypes: 'm5.large' })).not.toContain('\n');
  });
});

describe('several GPUs on one instance', () => {
  test.each(['g5.12xlarge', 'g6.48xlarge', 'g6e.24xlarge', 'p4d.24xlarge', 'p5.48xlarge'])(
    '%s is accepted',
    (type) => {
      expect(parse({ instanceTypes: type }).instanceTypes).toEqual([type]);
    },
  );

  test('a ladder of types with the same GPU count is accepted (4 A10G, 4 L4, 4 L40S)', () => {
    expect(parse({ instanceTypes: 'g6.12xlarge,g5.12xlarge,g6e.24xlarge' }).instanceTypes).toEqual([
      'g6.12xlarge',
      'g5.12xlarge',
      'g6e.24xlarge',
    ]);
  });

  test('mixing GPU counts names the key, the types and their GPU counts', () => {
    expect(errorOf({ instanceTypes: 'g5.xlarge,g6.xlarge,g5.12xlarge' })).toBe(
      'Invalid setting instanceTypes=g5.xlarge,g6.xlarge,g5.12xlarge: mixes GPU counts: ' +
        'g5.xlarge, g6.xlarge (1 GPU) vs g5.12xlarge (4 GPUs); a run resumes on whichever ' +
        'type the group launches, so list types with the same number of GPUs.',
    );
  });

  test('4 and 8 GPUs do not mix either', () => {
    expect(errorOf({ instanceTypes: ['g6e.12xlarge', 'g6e.48xlarge'] })).toContain(
      'mixes GPU counts: g6e.12xlarge (4 GPUs) vs g6e.48xlarge (8 GPUs)',
    );
  });

  test('an unknown type in a mixed list gets its own message, not the GPU-count one', () => {
    expect(errorOf({ instanceTypes: 'g5.12xlarge,m5.large' })).toContain(
      "'m5.large' is not a GPU type",
    );
  });
});

describe('P3 (V100, Volta) is refused', () => {
  const refusal = (list: string, type: string) =>
    `Invalid setting instanceTypes=${list}: '${type}' is a V100 (Volta) type, which tuning-lab ` +
    'cannot boot: no current Deep Learning AMI supports P3 and the trainer image (CUDA 13.0) ' +
    'needs Turing or newer (docs/external-names.md); use g6.xlarge or g5.xlarge (24 GB), ' +
    'g6e.xlarge (48 GB) or g4dn.xlarge (16 GB).';

  test('p3.2xlarge names Volta, the missing AMI, CUDA 13.0 and the types to use instead', () => {
    expect(errorOf({ instanceTypes: 'p3.2xlarge' })).toBe(refusal('p3.2xlarge', 'p3.2xlarge'));
  });

  test('p3dn.24xlarge gets the same refusal, not the multi-GPU one', () => {
    expect(errorOf({ instanceTypes: 'p3dn.24xlarge' })).toBe(
      refusal('p3dn.24xlarge', 'p3dn.24xlarge'),
    );
  });

  test('a p3 type beside supported ones is refused too', () => {
    expect(errorOf({ instanceTypes: 'g5.xlarge,p3.2xlarge' })).toBe(
      refusal('g5.xlarge,p3.2xlarge', 'p3.2xlarge'),
    );
  });

  test('every supported family is Turing or newer', () => {
    expect(
      parse({ instanceTypes: 'g4dn.xlarge,g5.xlarge,g6.xlarge,g6e.xlarge' }).instanceTypes,
    ).toEqual(['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge', 'g6e.xlarge']);
  });
});

describe('unknown keys', () => {
  test('a typo fails and suggests the setting', () => {
    expect(errorOf({ maxRuntimeHour: '2' })).toMatch(
      /^Unknown setting maxRuntimeHour=2: did you mean maxRuntimeHours\? Settings: region, /,
    );
  });

  test('an unrelated key fails and lists the settings', () => {
    const message = errorOf({ colour: 'blue' });
    expect(message).toContain('Unknown setting colour=blue');
    expect(message).not.toContain('did you mean');
    expect(message).toContain('maxRuntimeHours');
  });
});

describe('runs', () => {
  test('createInstance=true needs runConfig', () => {
    expect(errorOf({ createInstance: 'true' })).toContain(
      'Invalid setting createInstance=true: a run needs runConfig=',
    );
  });

  test('runId needs runConfig', () => {
    expect(errorOf({ runId: 'my-run' })).toContain('runId names a run, so it needs runConfig');
  });

  test('an explicit runId must match the pattern', () => {
    expect(errorOf({ runConfig: TINY_RUN_CONFIG, runId: 'My_Run' })).toContain(
      'Invalid setting runId=My_Run: must match ^[a-z0-9][a-z0-9-]{2,62}$',
    );
  });

  test('an explicit runId is kept', () => {
    expect(parse({ runConfig: TINY_RUN_CONFIG, runId: 'qwen-7b-support-1' }).run?.runId).toBe(
      'qwen-7b-support-1',
    );
  });

  test('the default runId is run- and 8 hex digits', () => {
    expect(parse({ runConfig: TINY_RUN_CONFIG }).run?.runId).toMatch(/^run-[0-9a-f]{8}$/);
  });

  test('the default runId changes with the image tag', () => {
    const latest = parse({ runConfig: TINY_RUN_CONFIG }).run?.runId;
    const pinned = parse({ runConfig: TINY_RUN_CONFIG, imageTag: 'abc1234' }).run?.runId;
    expect(pinned).not.toBe(latest);
  });

  test('the run carries the parsed config', () => {
    const run = parse({ runConfig: TINY_RUN_CONFIG }).run;
    expect(run?.config).toMatchObject({
      model: { base_model: 'builtin:tiny-llama', method: 'lora' },
    });
  });
});

describe('backend=sagemaker', () => {
  test('defaults to one ml.g5.xlarge instance', () => {
    expect(parse({ backend: 'sagemaker' })).toMatchObject({
      backend: 'sagemaker',
      instanceTypes: ['ml.g5.xlarge'],
      instanceCount: 1,
    });
  });

  test('takes one ml. type and several instances', () => {
    expect(
      parse({ backend: 'sagemaker', instanceTypes: 'ml.g6e.12xlarge', instanceCount: '4' }),
    ).toMatchObject({ instanceTypes: ['ml.g6e.12xlarge'], instanceCount: 4 });
  });

  test.each([
    [{ backend: 'lambda' }, 'Invalid setting backend=lambda: must be ec2 or sagemaker.'],
    [
      { backend: 'sagemaker', instanceTypes: 'g5.2xlarge' },
      'Invalid setting instanceTypes=g5.2xlarge: with backend=sagemaker the types are SageMaker ' +
        'training types; use ml.g5.2xlarge.',
    ],
    [
      { backend: 'sagemaker', instanceTypes: 'ml.g5.2xlarge,ml.g6.2xlarge' },
      'Invalid setting instanceTypes=ml.g5.2xlarge,ml.g6.2xlarge: a SageMaker training job runs ' +
        'on one instance type; list one (e.g. ml.g5.2xlarge).',
    ],
    [
      { instanceTypes: 'ml.g5.2xlarge' },
      "Invalid setting instanceTypes=ml.g5.2xlarge: 'ml.g5.2xlarge' is a SageMaker training " +
        'type; add -c backend=sagemaker, or use the EC2 type g5.2xlarge.',
    ],
    [
      { instanceCount: '2' },
      'Invalid setting instanceCount=2: several instances in one run need -c backend=sagemaker ' +
        '(the ec2 backend trains on one instance).',
    ],
    [
      { backend: 'sagemaker', instanceCount: '0' },
      'Invalid setting instanceCount=0: must be a whole number of instances from 1 to 16.',
    ],
    [
      { backend: 'sagemaker', debugHoldMinutes: '10' },
      "Invalid setting debugHoldMinutes=10: a SageMaker job's instances cannot be held or " +
        'reached (no SSM); it applies to backend=ec2 only.',
    ],
  ])('%j is refused in one line', (context, message) => {
    expect(errorOf(context)).toBe(message);
  });

  test('an ml. type without figures names the table', () => {
    expect(errorOf({ backend: 'sagemaker', instanceTypes: 'ml.p3.2xlarge' })).toContain(
      "'ml.p3.2xlarge' is not a SageMaker training type tuning-lab has figures for " +
        '(lib/sagemaker-types.ts)',
    );
  });
});
