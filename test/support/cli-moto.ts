/**
 * `npx tuning-lab` run in-process (cli/main.ts) against a moto server of the test file's own,
 * through the real SDK clients: the environment points them at moto as AWS_ENDPOINT_URL does on
 * a laptop. A file's own server means no other test file's reset can empty it mid-test. A
 * stack's outputs come from a small CloudFormation stack created in moto.
 *
 *     const emulator = useOwnEmulator();               // starts and stops it around the file
 *     await emulator.stackWithOutputs('TrainingStack', { OutputsBucketName: 'b' });
 *     const { code, stdout } = await emulator.run(['cost', '--json']);
 *
 * test/cli/support.ts builds its fixture stacks on the same pieces (startMoto, runCli, ...).
 */
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import type { CliContext } from '../../cli/context';
import { main } from '../../cli/main';
import { REGION } from './moto';
import { startMoto, stopMoto, type Moto } from './moto-server';

export { startMoto, stopMoto, type Moto } from './moto-server';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** AWS calls the command made, in all and per operation (the context's counter). */
  readonly calls: number;
  readonly byOperation: Record<string, number>;
  readonly seconds: number;
}

/** Client configuration for a test's own set-up and checks against the moto at `url`. */
export function clientConfig(url: string) {
  return {
    endpoint: url,
    region: REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing', sessionToken: 'testing' },
  };
}

/** The environment the SDK (and `npx tuning-lab`) needs to reach this moto, and nothing else. */
export function motoEnv(url: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: url,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** Stops the server (it exits when its stdin closes). */
class Capture {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/**
 * `npx tuning-lab <argv>` in-process with only the emulator's environment (no profile, no other
 * region); output captured. `now` fixes the command's clock (default: the real one).
 */
export async function runCli(url: string, argv: string[], now?: () => Date): Promise<CliResult> {
  const env = motoEnv(url);
  const names = [...Object.keys(env), 'AWS_PROFILE', 'AWS_DEFAULT_REGION'];
  const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_DEFAULT_REGION;
  Object.assign(process.env, env);
  const stdout = new Capture();
  const stderr = new Capture();
  let ctx: CliContext | undefined;
  const started = process.hrtime.bigint();
  try {
    const code = await main(argv, {
      stdout,
      stderr,
      env: process.env,
      now,
      onContext: (c) => (ctx = c),
    });
    return {
      code,
      stdout: stdout.text,
      stderr: stderr.text,
      calls: ctx?.calls.total ?? 0,
      byOperation: Object.fromEntries(ctx?.calls.byOperation ?? []),
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** A stack named `stackName` in moto whose outputs are `outputs` (what the commands read). */
export async function stackWithOutputs(
  url: string,
  stackName: string,
  outputs: Record<string, string>,
): Promise<string> {
  const cloudformation = new CloudFormationClient(clientConfig(url));
  try {
    const created = await cloudformation.send(
      new CreateStackCommand({
        StackName: stackName,
        TemplateBody: JSON.stringify({
          Resources: { Topic: { Type: 'AWS::SNS::Topic' } },
          Outputs: Object.fromEntries(
            Object.entries(outputs).map(([key, value]) => [key, { Value: value }]),
          ),
        }),
      }),
    );
    return created.StackId as string;
  } finally {
    cloudformation.destroy();
  }
}

export interface Emulator {
  /** moto's URL (set once beforeAll ran). */
  url: string;
  /** Client configuration for the test's own set-up and checks. */
  config(): ReturnType<typeof clientConfig>;
  /** Empties the emulator. */
  reset(): Promise<void>;
  run(argv: string[], now?: () => Date): Promise<CliResult>;
  /** A stack with just these outputs; returns its id. */
  stackWithOutputs(stackName: string, outputs: Record<string, string>): Promise<string>;
}

/** A moto server for this test file (testing/moto_server.py), started and stopped around it. */
export function useOwnEmulator(): Emulator {
  let moto: Moto | undefined;
  const emulator: Emulator = {
    url: '',
    config: () => clientConfig(emulator.url),
    async reset() {
      const response = await fetch(`${emulator.url}/moto-api/reset`, { method: 'POST' });
      if (!response.ok) throw new Error(`moto reset failed: ${response.status}`);
    },
    run: (argv, now) => runCli(emulator.url, argv, now),
    stackWithOutputs: (stackName, outputs) => stackWithOutputs(emulator.url, stackName, outputs),
  };
  beforeAll(async () => {
    moto = await startMoto();
    emulator.url = moto.url;
  }, 90_000);
  afterAll(() => stopMoto(moto));
  return emulator;
}
