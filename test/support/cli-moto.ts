/**
 * `npx tuning-lab` run in-process (cli/main.ts) against a moto server of the test file's own,
 * through the real SDK clients: the environment points them at moto as AWS_ENDPOINT_URL does on
 * a laptop. A file's own server means no other test file's reset can empty it mid-test.
 * A stack's outputs come from a small CloudFormation stack created in moto.
 */
import {
  CloudFormationClient,
  CreateStackCommand,
} from '@aws-sdk/client-cloudformation';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { main } from '../../cli/main';
import { REGION } from './moto';

const ROOT = join(__dirname, '..', '..');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Emulator {
  /** moto's URL (set once beforeAll ran). */
  url: string;
  /** Client configuration for the test's own set-up and checks. */
  config(): {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  };
  /** The environment a laptop pointed at the emulator has. */
  env(): Record<string, string>;
  /** Empties the emulator. */
  reset(): Promise<void>;
  run(argv: string[], now?: () => Date): Promise<CliResult>;
  /** A stack named `stackName` whose outputs are `outputs` (what the commands read). */
  stackWithOutputs(stackName: string, outputs: Record<string, string>): Promise<void>;
}

/** A moto server for this test file (testing/moto_server.py), its environment on process.env. */
export function useOwnEmulator(): Emulator {
  let child: ChildProcess | undefined;
  const saved: Record<string, string | undefined> = {};
  const emulator: Emulator = {
    url: '',
    config: () => ({
      endpoint: emulator.url,
      region: REGION,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing', sessionToken: 'testing' },
    }),
    env: () => ({
      AWS_ENDPOINT_URL: emulator.url,
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_SESSION_TOKEN: 'testing',
      AWS_EC2_METADATA_DISABLED: 'true',
      NO_COLOR: '1',
    }),
    async reset() {
      const response = await fetch(`${emulator.url}/moto-api/reset`, { method: 'POST' });
      if (!response.ok) throw new Error(`moto reset failed: ${response.status}`);
    },
    async run(argv, now) {
      let stdout = '';
      let stderr = '';
      const code = await main(argv, {
        stdout: { write: (text: string) => (stdout += text) },
        stderr: { write: (text: string) => (stderr += text) },
        env: { ...process.env, ...emulator.env() },
        now,
      });
      return { code, stdout, stderr };
    },
    async stackWithOutputs(stackName, outputs) {
      const template = {
        Resources: { Placeholder: { Type: 'AWS::SNS::Topic' } },
        Outputs: Object.fromEntries(
          Object.entries(outputs).map(([key, value]) => [key, { Value: value }]),
        ),
      };
      await new CloudFormationClient(emulator.config()).send(
        new CreateStackCommand({ StackName: stackName, TemplateBody: JSON.stringify(template) }),
      );
    },
  };
  beforeAll(async () => {
    const python = join(ROOT, '.venv', 'bin', 'python');
    const started = spawn(python, ['-m', 'testing.moto_server'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    child = started;
    emulator.url = await new Promise<string>((resolve, reject) => {
      let buffer = '';
      const timer = setTimeout(() => reject(new Error('moto did not start in 60 s')), 60_000);
      started.on('exit', (code) => reject(new Error(`moto exited with ${code}`)));
      started.stdout?.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const match = buffer.match(/MOTO_URL=(\S+)/);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
    });
    started.removeAllListeners('exit');
    for (const [key, value] of Object.entries(emulator.env())) {
      saved[key] = process.env[key];
      process.env[key] = value;
    }
  }, 90_000);
  afterAll(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    child?.stdin?.end();
    child?.kill();
  });
  return emulator;
}
